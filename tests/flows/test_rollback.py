"""The rollback flow on real databases: downgrades and restores, with approval and a ledger."""

from __future__ import annotations

import pytest
from prefect.flow_runs import resume_flow_run
from sqlalchemy import text

from autopr_migrate.flows.rollback import rollback
from autopr_migrate.operations.backup import take_backup
from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.targets.targets import resolve_target
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums, ledger_rows
from tests.support.alembic_run import revision_of
from tests.support.paused import BackgroundRun
from tests.support.prefect_api import run_artifacts

HEAD, BELOW_HEAD, BEFORE_ARCHIVE = "f19c7e25b0a3", "6a0d3f9b2c48", "e5c8f2a1d934"


def _approved_rollback(**kwargs) -> object:
    policy = fast_policy(approval={"mode": "always"})
    background = BackgroundRun(flow=rollback, target="app", policy=policy, **kwargs)
    run = background.paused()
    resume_flow_run(run.id, run_input={"decision": "approve", "approver": "ops", "reason": "INC-9"})
    return background.result()


@pytest.mark.both_dialects
def test_downgrade_one_revision_keeps_the_data(migration_target) -> None:
    engine = at_head_with_rows(migration_target.engine())
    before = checksums(engine)
    state = _approved_rollback(mode="downgrade", revision="-1")
    assert state.is_completed(), state.message
    assert revision_of(engine) == BELOW_HEAD and checksums(engine) == before
    (row,) = ledger_rows(engine)
    assert (row["operation"], row["status"], row["approved_by"]) == (
        "downgrade",
        "succeeded",
        "ops",
    )
    assert (row["from_revision"], row["to_revision"]) == (HEAD, BELOW_HEAD)
    report = run_artifacts(state.state_details.flow_run_id)["migration-report-app"]
    assert "SUCCEEDED" in report and "ops (INC-9)" in report


def test_downgrade_to_a_named_revision(migration_target) -> None:
    engine = at_head_with_rows(migration_target.engine())
    before = checksums(engine)
    state = _approved_rollback(mode="downgrade", revision=BEFORE_ARCHIVE[:6])
    assert state.is_completed(), state.message
    assert revision_of(engine) == BEFORE_ARCHIVE and checksums(engine) == before


@pytest.mark.both_dialects
def test_a_downgrade_the_application_cannot_live_with_is_restored(migration_target) -> None:
    engine = at_head_with_rows(migration_target.engine())
    before = checksums(engine)
    state = _approved_rollback(mode="downgrade", revision="8d2e4b7c9a05")  # drops version
    assert state.is_failed() and "restored" in state.message, state.message
    assert revision_of(engine) == HEAD and checksums(engine) == before


@pytest.mark.both_dialects
def test_restore_a_named_backup_after_rows_changed(migration_target) -> None:
    engine = at_head_with_rows(migration_target.engine())
    backup = take_backup(resolve_target("app"), BackupPolicy(), label="manual")
    at_backup = checksums(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM workflow_executions WHERE id > 10"))
        connection.execute(text("UPDATE users SET display_name = 'changed'"))
    state = _approved_rollback(mode="restore", backup=backup.path.name)
    assert state.is_completed(), state.message
    assert checksums(engine) == at_backup
    assert list(migration_target.backup_dir.glob("*-pre-restore.*"))
    (row,) = [r for r in ledger_rows(engine) if r["operation"] == "restore"]
    assert row["status"] == "succeeded"


def test_a_backup_that_no_longer_matches_its_checksum_is_refused(migration_target) -> None:
    engine = at_head_with_rows(migration_target.engine())
    backup = take_backup(resolve_target("app"), BackupPolicy(), label="manual")
    with backup.path.open("r+b") as handle:
        handle.seek(100)
        handle.write(b"tampered")
    before = checksums(engine)
    state = rollback(
        target="app",
        mode="restore",
        backup=backup.path.name,
        policy=fast_policy(),
        return_state=True,
    )
    assert state.is_failed() and "no longer matches the sha256" in state.message
    assert "nothing was changed" in state.message and checksums(engine) == before
    assert ledger_rows(engine) == []
    assert not list(migration_target.backup_dir.glob("*-pre-restore.*"))


def test_a_restore_always_asks_a_person_even_where_the_policy_would_not(
    migration_target,
) -> None:
    at_head_with_rows(migration_target.engine())
    take_backup(resolve_target("app"), BackupPolicy(), label="manual")
    background = BackgroundRun(
        flow=rollback, target="app", mode="restore", policy=fast_policy()
    )  # approval mode "never"
    run = background.paused()
    resume_flow_run(run.id, run_input={"decision": "reject", "approver": "ops"})
    assert background.result().is_failed()


def test_a_backup_whose_file_is_gone_is_refused(migration_target) -> None:
    engine = at_head_with_rows(migration_target.engine())
    backup = take_backup(resolve_target("app"), BackupPolicy(), label="manual")
    backup.path.unlink()
    state = rollback(target="app", mode="restore", policy=fast_policy(), return_state=True)
    assert state.is_failed() and "its file is gone: it was not restored" in state.message
    assert ledger_rows(engine) == []


def test_base_needs_a_confirmation(migration_target) -> None:
    engine = at_head_with_rows(migration_target.engine())
    state = rollback(target="app", revision="base", policy=fast_policy(), return_state=True)
    assert state.is_failed() and "confirm_base" in state.message
    assert revision_of(engine) == HEAD
