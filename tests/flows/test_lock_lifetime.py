"""The database's own lock holds from planning to the report, through the approval pause.

A Prefect lease can lapse (a stalled process, an API outage, an operator freeing the slot); the
database lock still keeps every other migration out, and the run proves both locks are its own
before the backup and before the upgrade.
"""

from __future__ import annotations

import time
from uuid import UUID

import pytest
from prefect import get_client
from prefect.concurrency._sync import (
    acquire_concurrency_slots_with_lease,
    release_concurrency_slots_with_lease,
)
from prefect.flow_runs import resume_flow_run

from autopr_migrate.flows.migrate import migrate
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums, ledger_rows
from tests.support.alembic_run import alembic_cli, revision_of
from tests.support.paused import BackgroundRun
from tests.support.prefect_api import logged
from tests.support.revisions import ADD_PRIORITY, add_revision

pytestmark = pytest.mark.both_dialects  # their behaviour differs by dialect

APPROVAL = {"mode": "always", "timeout_seconds": 120}


def _paused_run() -> tuple[BackgroundRun, UUID, UUID]:
    """A run paused for approval, its flow run id, and its lease on migrate-app."""
    background = BackgroundRun(target="app", policy=fast_policy(approval=APPROVAL))
    run = background.paused()
    lease = logged(run.id, r"migrate-app \(lease ([0-9a-f-]{36})\)").group(1)
    return background, run.id, UUID(lease)


def _revoke(lease: UUID) -> None:
    with get_client(sync_client=True) as client:
        client.release_concurrency_slots_with_lease(lease)


def _until_no_slot_is_taken(limit: str, wait: float = 15) -> None:
    deadline = time.monotonic() + wait
    with get_client(sync_client=True) as client:
        while client.read_global_concurrency_limit_by_name(limit).active_slots:
            assert time.monotonic() < deadline, f"a slot of {limit} is still taken after {wait} s"
            time.sleep(0.2)


def test_a_lapsed_lease_lets_no_second_run_or_alembic_in(migration_target, history) -> None:
    engine = at_head_with_rows(migration_target.engine())
    goal = add_revision(history, "aaaa00000110", ADD_PRIORITY)
    first, run_id, lease = _paused_run()
    _revoke(lease)  # the slot is free in Prefect's eyes now

    second = migrate(
        target="app",
        requested_by="mallory",
        return_state=True,
        policy=fast_policy(lock={"wait_seconds": 2}),
    )
    assert second.is_failed()
    assert "holds the migration lock" in second.message  # a session, or a lock file
    assert "nothing was changed" in second.message
    laptop = alembic_cli("upgrade", "head", url=migration_target.url)
    assert laptop.returncode != 0
    assert "another migration holds this database's migration lock" in laptop.stdout
    assert revision_of(engine) != goal and ledger_rows(engine) == []
    _until_no_slot_is_taken("migrate-app")  # the second run's, let go as it ended

    resume_flow_run(run_id, run_input={"decision": "approve", "approver": "ops", "reason": "ok"})
    state = first.result()
    assert state.is_completed(), state.message
    assert "Prefect lease on migrate-app had lapsed before the backup" in state.message
    assert "under the database lock it held throughout" in state.message
    assert revision_of(engine) == goal
    assert [row["status"] for row in ledger_rows(engine)] == ["succeeded"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_run_whose_slot_another_took_stops_unchanged(migration_target, history) -> None:
    engine = at_head_with_rows(migration_target.engine())
    add_revision(history, "aaaa00000111", ADD_PRIORITY)
    before = (revision_of(engine), checksums(engine))
    first, run_id, lease = _paused_run()
    _revoke(lease)
    other = acquire_concurrency_slots_with_lease(
        ["migrate-app"], 1, timeout_seconds=5, strict=True, lease_duration=60
    )
    try:
        resume_flow_run(run_id, run_input={"decision": "approve", "approver": "ops"})
        state = first.result()
    finally:
        release_concurrency_slots_with_lease(other.lease_id)
    assert state.is_failed()
    assert "lapsed and another run holds it now" in state.message
    assert "nothing was changed (verified" in state.message
    assert (revision_of(engine), checksums(engine)) == before
    assert ledger_rows(engine) == []
    assert not list(migration_target.backup_dir.glob("*.json"))
