"""The migrate flow end to end: real databases, a real Prefect API, real HTTP health checks."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums, ledger_rows, schema
from tests.support.alembic_run import revision_of
from tests.support.history import heads, pending
from tests.support.paused import migrate_approving
from tests.support.prefect_api import run_artifacts, run_events
from tests.support.revisions import (
    ADD_PRIORITY,
    BREAK_APPLICATION,
    FAILING_DOWNGRADE,
    FAILING_UPGRADE,
    add_revision,
)

HISTORY = [info.revision for info in pending(None)]


def _run(revision: str = "head") -> object:
    return migrate_approving(target="app", revision=revision, policy=fast_policy())


@pytest.mark.both_dialects
def test_upgrade_succeeds_with_ledger_artifacts_and_events(migration_target, history) -> None:
    engine = at_head_with_rows(migration_target.engine())
    start = revision_of(engine)
    goal = add_revision(history, "aaaa00000001", ADD_PRIORITY)

    state = _run()

    assert state.is_completed(), state.message
    assert revision_of(engine) == goal
    (row,) = ledger_rows(engine)
    assert row["status"] == "succeeded"
    assert (row["from_revision"], row["to_revision"]) == (start, goal)
    # The applied revision, and (first run through the flow) those plain Alembic applied before.
    assert set(json.loads(row["revision_checksums"])) == {goal} | set(HISTORY)
    assert row["backup_sha256"] and row["flow_run_id"] == str(state.state_details.flow_run_id)
    artifacts = run_artifacts(state.state_details.flow_run_id)
    assert {"migration-plan-app", "migration-report-app", "migration-progress-app"} <= set(
        artifacts
    )
    assert "ALTER TABLE workflows ADD COLUMN priority" in artifacts["migration-plan-app"]
    assert "SUCCEEDED" in artifacts["migration-report-app"]
    found = run_events(
        state.state_details.flow_run_id, "autopr.database.app", expect="autopr.migration.succeeded"
    )
    assert {"autopr.migration.started", "autopr.migration.succeeded"} <= set(found)


def test_nothing_to_do_completes_without_a_backup(migration_target) -> None:
    at_head_with_rows(migration_target.engine())
    state = _run()
    assert state.is_completed()
    assert f"already at {heads()[0]}" in state.message
    assert not list(migration_target.backup_dir.glob("*"))


def test_failed_probe_downgrades_and_is_healthy_again(migration_target, history) -> None:
    engine = at_head_with_rows(migration_target.engine())
    start, before = revision_of(engine), checksums(engine)
    add_revision(history, "aaaa00000002", BREAK_APPLICATION)

    state = _run()

    assert state.is_failed()
    assert "rolled back: downgraded to" in state.message
    assert "missing column workflows.description" in state.message
    assert revision_of(engine) == start
    assert checksums(engine) == before
    assert [r["status"] for r in ledger_rows(engine)] == ["rolled_back"]
    assert httpx.get(migration_target.health_url).status_code == 200
    found = run_events(
        state.state_details.flow_run_id,
        "autopr.database.app",
        expect="autopr.migration.rolled-back",
    )
    assert "autopr.migration.rolled-back" in found


@pytest.mark.both_dialects
def test_failed_downgrade_restores_the_backup_exactly(migration_target, history) -> None:
    engine = at_head_with_rows(migration_target.engine())
    start, before = revision_of(engine), checksums(engine)
    add_revision(history, "aaaa00000003", FAILING_DOWNGRADE)

    state = _run()

    assert state.is_failed()
    assert "restored backup" in state.message
    assert revision_of(engine) == start
    assert checksums(engine) == before
    assert [r["status"] for r in ledger_rows(engine)] == ["restored"]
    assert list(migration_target.backup_dir.glob("*-pre-restore.*"))
    assert httpx.get(migration_target.health_url).status_code == 200


@pytest.mark.both_dialects
def test_failed_revision_rolls_back_its_own_transaction(migration_target, history) -> None:
    engine = at_head_with_rows(migration_target.engine())
    start, before, columns = revision_of(engine), checksums(engine), schema(engine)
    add_revision(history, "aaaa00000004", FAILING_UPGRADE)

    state = _run()

    assert state.is_failed()
    assert "revision aaaa00000004" in state.message and "nothing was changed" in state.message
    assert revision_of(engine) == start
    assert schema(engine) == columns  # the half-done column is gone with its transaction
    assert checksums(engine) == before
    assert [r["status"] for r in ledger_rows(engine)] == ["failed"]


@pytest.mark.both_dialects
def test_partial_upgrade_is_downgraded_to_the_start(migration_target, history) -> None:
    engine = at_head_with_rows(migration_target.engine())
    start, before = revision_of(engine), checksums(engine)
    first = add_revision(history, "aaaa00000005", ADD_PRIORITY)
    add_revision(history, "aaaa00000006", FAILING_UPGRADE, down=first)

    state = _run()

    assert state.is_failed()
    assert f"after reaching {first}" in state.message and "rolled back" in state.message
    assert revision_of(engine) == start
    assert checksums(engine) == before


@pytest.mark.parametrize("revision", ["+1", "aaaa0000000"], ids=["relative", "prefix"])
def test_revision_may_be_relative_or_a_prefix(migration_target, history, revision) -> None:
    engine = at_head_with_rows(migration_target.engine())
    first = add_revision(history, "aaaa00000007", ADD_PRIORITY)
    add_revision(history, "bbbb00000008", ADD_PRIORITY, down=first, message="second")
    state = _run(revision)
    assert state.is_completed(), state.message
    assert revision_of(engine) == first
