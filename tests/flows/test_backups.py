"""Backups an operator can list, trust and prune: ``backups``, retention and ``restore-test``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from autopr_migrate.cli.app import main
from autopr_migrate.errors import ExitCode
from autopr_migrate.flows.migrate import migrate
from autopr_migrate.operations.backup import take_backup
from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.store import ledger
from autopr_migrate.store.backups import Backup
from autopr_migrate.targets.targets import resolve_target
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows
from tests.support.revisions import add_revision

NO_OP = ("op.execute('SELECT 1')", "pass")


def _backup(days_old: float = 0, label: str = "manual") -> Backup:
    backup = take_backup(resolve_target("app"), BackupPolicy(), label=label)
    if days_old:
        data = json.loads(backup.sidecar.read_text())
        data["created_at"] = (datetime.now(UTC) - timedelta(days=days_old)).isoformat()
        backup.sidecar.write_text(json.dumps(data))
    return backup


def _names(migration_target) -> set[str]:
    return {p.name for p in migration_target.backup_dir.iterdir() if not p.name.startswith(".")}


@pytest.mark.both_dialects
def test_backups_lists_time_revision_size_and_checksum(migration_target, capsys) -> None:
    at_head_with_rows(migration_target.engine())
    good, damaged = _backup(days_old=2), _backup()
    with damaged.path.open("ab") as handle:
        handle.write(b"x")
    assert main(["backups", "--target", "app"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:6] == ["created", "(UTC)", "label", "revision", "size", "sha256"]
    newest, oldest = out[2], out[3]  # newest first
    assert damaged.path.name in newest and "MISMATCH" in newest
    assert good.path.name in oldest and " verified " in oldest
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    assert good.revision in oldest and oldest.startswith(f"{two_days_ago:%Y-%m-%d %H}")
    assert "KiB" in oldest or "MiB" in oldest


def test_retention_after_a_successful_migration_keeps_what_is_needed(
    migration_target, history
) -> None:
    engine = at_head_with_rows(migration_target.engine())
    expired = [_backup(days_old=60 + n) for n in range(3)]
    also_expired = _backup(days_old=90)
    young = _backup(days_old=1)
    add_revision(history, "dddd00000001", NO_OP)
    policy = fast_policy().model_copy(update={"backup": BackupPolicy(keep_last=1, keep_days=7)})
    state = migrate(target="app", policy=policy, return_state=True)
    assert state.is_completed(), state.message
    left = _names(migration_target)
    assert not any(b.path.name in left for b in [*expired, also_expired])
    assert young.path.name in left  # younger than keep_days
    (run_backup,) = [
        name
        for name in left
        if name.endswith("-pre-upgrade.sqlite3") or name.endswith("-pre-upgrade.dump")
    ]
    # The newest successful run's backup and a backup a running ledger row names both stay,
    # however old and however many newer ones exist.
    protected = _backup(days_old=90)
    with engine.connect() as connection:
        ledger.start(
            connection,
            target="app",
            from_revision="dddd00000001",
            to_revision="dddd00000002",
            backup_path=str(protected.path),
        )
    for _ in range(2):
        _backup()
    data = json.loads((migration_target.backup_dir / f"{run_backup}.json").read_text())
    data["created_at"] = (datetime.now(UTC) - timedelta(days=90)).isoformat()
    (migration_target.backup_dir / f"{run_backup}.json").write_text(json.dumps(data))
    assert (
        main(["backups", "--target", "app", "--prune", "--keep-last", "1", "--keep-days", "0"]) == 0
    )
    left = _names(migration_target)
    assert run_backup in left and protected.path.name in left
    assert young.path.name not in left


@pytest.mark.both_dialects
def test_restore_test_restores_a_copy_and_verifies_it(migration_target, capsys) -> None:
    engine = at_head_with_rows(migration_target.engine())
    backup = _backup()
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM workflow_executions"))
    assert main(["restore-test", "--target", "app", "--backup", backup.path.name]) == 0
    out = capsys.readouterr().out
    rows = sum(backup.row_counts.values())
    assert f"{backup.path.name} (revision {backup.revision}): PASSED" in out
    assert f"{len(backup.row_counts)} tables and {rows:,} rows as recorded" in out
    with engine.connect() as connection:  # the target itself was not touched
        assert connection.scalar(text("SELECT count(*) FROM workflow_executions")) == 0
        if connection.dialect.name == "postgresql":
            leftovers = "SELECT count(*) FROM pg_database WHERE datname LIKE 'autopr_restoretest%'"
            assert connection.scalar(text(leftovers)) == 0


@pytest.mark.both_dialects
def test_restore_test_fails_a_backup_that_is_not_what_its_sidecar_says(
    migration_target, capsys
) -> None:
    at_head_with_rows(migration_target.engine())
    backup = _backup()
    data = json.loads(backup.sidecar.read_text())
    data["row_counts"]["workflows"] += 1
    backup.sidecar.write_text(json.dumps(data))
    assert main(["restore-test", "--target", "app"]) == ExitCode.CHECK_FAILED
    out = capsys.readouterr().out
    expected = backup.row_counts["workflows"]
    assert f"table workflows: {expected} rows in the copy, {expected + 1} recorded" in out
    with backup.path.open("ab") as handle:
        handle.write(b"x")
    assert main(["restore-test", "--target", "app"]) == ExitCode.CHECK_FAILED
    assert "does not match the sha256" in capsys.readouterr().out


def test_backups_are_listed_while_the_database_is_down(migration_target, monkeypatch, capsys):
    at_head_with_rows(migration_target.engine())
    backup, newer = _backup(days_old=90), _backup()
    monkeypatch.setenv("AUTOPR_DB_APP_URL", "postgresql://app:Hidden-pw@127.0.0.1:1/autopr")
    assert main(["backups", "--target", "app", "--keep-last", "1", "--keep-days", "0"]) == 0
    out = capsys.readouterr().out
    (old_line,) = [line for line in out.splitlines() if backup.path.name in line]
    assert " verified " in old_line and " unknown " in old_line
    assert newer.path.name in out
    assert "retention verdicts are incomplete: the database cannot be read" in out
    assert "Hidden-pw" not in out
    assert main(["backups", "--target", "app", "--prune"]) == ExitCode.UNAVAILABLE  # not blind
    assert backup.path.exists()


def test_the_newest_backup_is_never_a_pre_restore_dump(migration_target, capsys) -> None:
    at_head_with_rows(migration_target.engine())
    wanted = _backup()
    broken_state = _backup(label="pre-restore")  # what a restore replaced: named only
    assert main(["restore-test", "--target", "app"]) == 0
    out = capsys.readouterr().out
    assert wanted.path.name in out and broken_state.path.name not in out


def test_retention_keeps_a_failed_runs_backup_and_leaves_other_targets_alone(
    migration_target,
) -> None:
    engine = at_head_with_rows(migration_target.engine())
    after_failure = _backup(days_old=90)
    with engine.connect() as connection:
        entry = ledger.start(
            connection,
            target="app",
            from_revision="x",
            to_revision="y",
            backup_path=str(after_failure.path),
        )
        ledger.finish(connection, entry, status=ledger.FAILED)
    # Another target's backup in the same directory: not ours to list, judge or delete.
    foreign = _backup(days_old=90)
    data = json.loads(foreign.sidecar.read_text())
    data["target"] = "other"
    foreign.sidecar.write_text(json.dumps(data))
    expired = _backup(days_old=80)
    for _ in range(2):
        _backup()
    assert (
        main(["backups", "--target", "app", "--prune", "--keep-last", "1", "--keep-days", "0"]) == 0
    )
    left = _names(migration_target)
    assert after_failure.path.name in left and foreign.path.name in left
    assert expired.path.name not in left
