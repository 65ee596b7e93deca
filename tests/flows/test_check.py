"""The check flow on real databases: what it finds, its artifact, and the event that pages."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, Table

from autopr.database import Base
from autopr_migrate.flows.check import check
from autopr_migrate.flows.migrate import migrate
from autopr_migrate.flows.rollback import rollback
from autopr_migrate.operations.backup import take_backup
from autopr_migrate.policy.parameters import BackupPolicy, MigrationPolicy, RiskPolicy
from autopr_migrate.store import ledger
from autopr_migrate.targets.targets import resolve_target
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, ledger_rows
from tests.support.alembic_run import revision_of
from tests.support.prefect_api import logged, run_artifacts, run_events
from tests.support.revisions import add_revision

NO_OP = ("op.execute('SELECT 1')", "pass")
AS_THEY_RAN = Path(__file__).parents[1] / "migrations" / "as_they_ran"
CHECK_FAILED = "autopr.migration.check-failed"


def _migrated_through_the_flow(migration_target, history) -> str:
    """At head, the last revision applied by migrate (so the ledger holds its checksum)."""
    engine = at_head_with_rows(migration_target.engine())
    revision = add_revision(history, "cccc00000001", NO_OP)
    state = migrate(target="app", policy=fast_policy(), return_state=True)
    assert state.is_completed(), state.message
    assert revision_of(engine) == revision
    return revision


def _check(*, clean: bool = False, **policy) -> tuple[object, str, dict]:
    state = check(targets=["app"], policy=fast_policy(**policy), return_state=True)
    run_id = state.state_details.flow_run_id
    artifact = run_artifacts(run_id)["migration-check-app"]
    found = run_events(
        run_id, resolve_target("app").resource_id, expect=CHECK_FAILED, wait=3 if clean else 15
    )
    return state, artifact, found


@pytest.mark.both_dialects
def test_a_clean_target_reports_clean(migration_target, history) -> None:
    _migrated_through_the_flow(migration_target, history)
    state, artifact, found = _check(clean=True)
    assert state.is_completed() and state.name == "Completed", state.message
    assert "**Clean**" in artifact and "PROBLEM" not in artifact, artifact
    assert CHECK_FAILED not in found


@pytest.mark.parametrize("edited", ["by the flow", "8d2e4b7c9a05"])
def test_a_hand_edited_applied_revision_is_reported(migration_target, history, edited) -> None:
    """The flow's own revision, or one plain Alembic applied before the flow's first run."""
    revision = _migrated_through_the_flow(migration_target, history)
    revision = revision if edited == "by the flow" else edited
    applied = next(history.glob(f"*{revision}*.py"))
    applied.write_text(applied.read_text() + "\n# edited after it ran\n")
    state, artifact, found = _check()
    assert state.name == "Problems found", state.message
    assert "| applied revisions | **PROBLEM** |" in artifact
    assert f"{revision}: {applied.name} changed after it was applied" in artifact
    assert "applied revisions" in found[CHECK_FAILED]["problems"]


def test_a_deleted_applied_revision_is_reported(migration_target, history) -> None:
    revision = _migrated_through_the_flow(migration_target, history)
    next(history.glob(f"*{revision}*.py")).unlink()
    _state, artifact, found = _check()
    assert f"{revision}: the database is at this revision, but no revision file" in artifact
    assert CHECK_FAILED in found


def test_a_lost_revision_in_the_middle_is_reported_and_the_rest_still_checked(
    migration_target, history
) -> None:
    _migrated_through_the_flow(migration_target, history)
    next(history.glob("*e5c8f2a1d934*.py")).unlink()
    _state, artifact, found = _check()
    assert "e5c8f2a1d934: its revision file is gone" in artifact
    assert "| revision | **PROBLEM** | could not be checked: the schema history is broken" in (
        artifact
    )
    assert "| ledger | ok |" in artifact and "| health | ok |" in artifact
    assert "applied revisions" in found[CHECK_FAILED]["problems"]


@pytest.mark.both_dialects
def test_a_model_change_without_a_revision_is_reported(migration_target) -> None:
    at_head_with_rows(migration_target.engine())
    audit = Table("audit_entries", Base.metadata, Column("id", Integer, primary_key=True))
    try:
        _state, artifact, found = _check()
    finally:
        Base.metadata.remove(audit)
    assert "| model drift | **PROBLEM** |" in artifact
    assert "table audit_entries is in the models but not in the database" in artifact
    assert "model drift" in found[CHECK_FAILED]["problems"]


def test_a_pending_revision_is_reported(migration_target, history) -> None:
    at_head_with_rows(migration_target.engine())
    add_revision(history, "cccc00000002", NO_OP, message="add the audit log")
    _state, artifact, found = _check()
    assert "| revision | **PROBLEM** |" in artifact
    assert "1 revision(s) pending up to cccc00000002" in artifact
    assert "`cccc00000002` add the audit log" in artifact
    assert "revision" in found[CHECK_FAILED]["problems"]


def test_a_stale_running_ledger_row_is_reported(migration_target) -> None:
    engine = at_head_with_rows(migration_target.engine())
    with engine.connect() as connection:
        ledger.start(
            connection,
            target="app",
            from_revision="6a0d3f9b2c48",
            to_revision="f19c7e25b0a3",
            flow_run_name="migrate-app-head-dead01",
        )
    _state, artifact, found = _check()
    assert "| ledger | **PROBLEM** | 1 run(s) never finished" in artifact
    assert "autopr-migrate resolve --target app" in artifact
    assert "migrate-app-head-dead01" in artifact
    assert "ledger" in found[CHECK_FAILED]["problems"]


def test_backups_outside_retention_and_a_damaged_backup_are_reported(migration_target) -> None:
    at_head_with_rows(migration_target.engine())
    target = resolve_target("app")
    backups = [take_backup(target, BackupPolicy(), label="manual") for _ in range(3)]
    old = (datetime.now(UTC) - timedelta(days=40)).timestamp()
    os.utime(backups[0].path, (old, old))  # the file time is not what counts: the sidecar is
    backups[0].sidecar.write_text(
        backups[0]
        .sidecar.read_text()
        .replace(backups[0].created_at, (datetime.now(UTC) - timedelta(days=40)).isoformat())
    )
    with backups[2].path.open("ab") as handle:
        handle.write(b"tampered")
    policy = MigrationPolicy(backup=BackupPolicy(keep_last=1, keep_days=30))
    state = check(
        targets=["app"],
        policy=policy.model_copy(update={"probe": fast_policy().probe}),
        return_state=True,
    )
    artifact = run_artifacts(state.state_details.flow_run_id)["migration-check-app"]
    assert "1 do not verify" in artifact and "1 older than the retention policy" in artifact
    assert f"{backups[2].path.name}: MISMATCH" in artifact
    assert f"{backups[0].path.name}: 40.0 days old" in artifact


def test_an_unhealthy_application_is_reported(migration_target, monkeypatch) -> None:
    at_head_with_rows(migration_target.engine())
    monkeypatch.setenv("AUTOPR_DB_APP_HEALTH_URL", "http://127.0.0.1:9/health")
    _state, artifact, found = _check()
    assert "| health | **PROBLEM** | http://127.0.0.1:9/health: no answer" in artifact
    assert "health" in found[CHECK_FAILED]["problems"]


def test_migrate_refuses_a_target_whose_applied_revision_changed(migration_target, history):
    revision = _migrated_through_the_flow(migration_target, history)
    applied = next(history.glob(f"*{revision}*.py"))
    applied.write_text(applied.read_text().replace("SELECT 1", "SELECT 2"))
    add_revision(history, "cccc00000003", NO_OP)
    engine = migration_target.engine()
    state = migrate(target="app", policy=fast_policy(), return_state=True)
    assert state.is_failed()
    assert f"{revision}: {applied.name} changed after it was applied" in state.message
    assert "policy.risk.changed_history_reason" in state.message
    assert revision_of(engine) == revision
    assert [row["status"] for row in ledger_rows(engine)] == ["succeeded"]


def test_an_accepted_history_change_is_recorded_and_checks_clean_after(
    migration_target, history
) -> None:
    revision = _migrated_through_the_flow(migration_target, history)
    applied = next(history.glob(f"*{revision}*.py"))
    applied.write_text(applied.read_text() + "\n# a comment fixed after the fact\n")
    add_revision(history, "cccc00000004", NO_OP)
    policy = fast_policy().model_copy(
        update={"risk": RiskPolicy(changed_history_reason="comment only, CHG-7")}
    )
    state = migrate(target="app", policy=policy, return_state=True)
    assert state.is_completed(), state.message
    assert f"{revision} were accepted: comment only, CHG-7" in state.message
    assert revision_of(migration_target.engine()) == "cccc00000004"
    _state, artifact, found = _check(clean=True)
    assert "**Clean**" in artifact and CHECK_FAILED not in found


def test_a_database_that_ran_autopr_s_earlier_revision_texts_checks_clean_and_migrates(
    migration_target, history
) -> None:
    """AutoPR's revisions rewritten to use the safe operations declare the texts that ran."""
    rewritten = {}
    for earlier in AS_THEY_RAN.glob("*.py.txt"):
        current = history / earlier.name.removesuffix(".txt")
        rewritten[current] = current.read_bytes()
        current.write_bytes(earlier.read_bytes())
    _migrated_through_the_flow(migration_target, history)  # its ledger: the texts that ran
    for path, text in rewritten.items():
        path.write_bytes(text)
    _state, artifact, found = _check(clean=True)
    assert "**Clean**" in artifact and CHECK_FAILED not in found, artifact
    assert "rewritten as it declares (3: e5c8f2a1d934, 6a0d3f9b2c48, f19c7e25b0a3)" in artifact

    add_revision(history, "cccc00000005", NO_OP)
    state = migrate(target="app", policy=fast_policy(), return_state=True)
    assert state.is_completed(), state.message
    run_id = state.state_details.flow_run_id
    for revision in ("e5c8f2a1d934", "6a0d3f9b2c48", "f19c7e25b0a3"):
        logged(run_id, f"{revision}: rewritten since it ran here .* declared equivalent by")
    logged(run_id, "declared equivalent by the revision: the single INSERT and UPDATE it ran")
    recorded = json.loads(ledger_rows(migration_target.engine())[-1]["revision_checksums"])
    assert {recorded[path.name.split("_")[4]] for path in rewritten} == {
        hashlib.sha256(text).hexdigest() for text in rewritten.values()
    }  # the next check compares with the rewritten texts


def test_a_downgrade_through_a_changed_applied_revision_is_refused(migration_target, history):
    revision = _migrated_through_the_flow(migration_target, history)
    applied = next(history.glob(f"*{revision}*.py"))
    applied.write_text(applied.read_text() + "\n# edited after it ran\n")
    state = rollback(
        target="app", mode="downgrade", revision="-1", policy=fast_policy(), return_state=True
    )
    assert state.is_failed() and f"{revision}: {applied.name} changed" in state.message
    assert revision_of(migration_target.engine()) == revision


def test_an_unconfigured_target_fails_the_run_but_the_others_are_checked(migration_target):
    at_head_with_rows(migration_target.engine())
    state = check(targets=["nowhere", "app"], policy=fast_policy(), return_state=True)
    assert state.is_failed() and "could not check nowhere (not configured)" in state.message
    assert "migration-check-app" in run_artifacts(state.state_details.flow_run_id)
