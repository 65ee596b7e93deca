"""The guarded change and the restore sequence, called directly: no flow, no Prefect API.

What a command-line caller supplies (``PlainRun``: the locked connection, the ledger row) is
written here in a few lines; the steps are ``DirectSteps``.
"""

from __future__ import annotations

from contextlib import contextmanager

import httpx
import pytest

from autopr_migrate.backends.connections import connect
from autopr_migrate.backends.registry import backend_for
from autopr_migrate.errors import LockLost, PreflightRefused
from autopr_migrate.model import Operation, Status
from autopr_migrate.operations.guarded_change import Change, WayBack, guarded_change
from autopr_migrate.operations.recovery import Stage, restore_and_probe
from autopr_migrate.operations.steps import DirectSteps
from autopr_migrate.operations.timeline import Timeline
from autopr_migrate.store import ledger
from autopr_migrate.targets.targets import resolve_target
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums, ledger_rows, schema
from tests.support.alembic_run import revision_of
from tests.support.revisions import (
    ADD_PRIORITY,
    BREAK_APPLICATION,
    FAILING_DOWNGRADE,
    FAILING_UPGRADE,
    add_revision,
)


class PlainRun:
    """The run a caller without Prefect supplies: a locked connection and a ledger row."""

    def __init__(self, target, policy, connection, lock) -> None:
        self.target, self.policy, self.timeline = target, policy, Timeline()
        self.backup, self.changing, self.entry = None, False, None
        self._connection, self._lock = connection, lock

    @property
    def connection(self):
        return self._connection

    def verify_locks(self, moment: str) -> None:
        if not self._lock.still_held():
            raise LockLost(f"before {moment}: the lock is gone")

    def hold_database_lock(self) -> None:
        backend_for(self.target).ensure_locked(self._connection, self.target)

    def open_ledger_row(self, checksums: dict[str, str]) -> None:
        with connect(self.target) as connection:
            self.entry = ledger.start(connection, target=self.target.name, operation="upgrade",
                                      revision_checksums=checksums,
                                      backup_path=str(self.backup.path))  # fmt: skip

    def rewrite_ledger_row(self) -> None:
        with connect(self.target) as connection:
            ledger.rewrite(connection, self.entry)


@contextmanager
def locked_run(policy=None):
    target = resolve_target("app")
    with (
        connect(target) as connection,
        backend_for(target).database_lock(connection, target, wait_seconds=5) as lock,
    ):
        yield PlainRun(target, policy or fast_policy(), connection, lock)


def _upgrade(start: str, goal: str) -> Change:
    return Change(Operation.UPGRADE, start, goal, database_bytes=0)


@pytest.mark.both_dialects
def test_an_upgrade_that_holds_is_backed_up_applied_and_probed(migration_target, history):
    engine = at_head_with_rows(migration_target.engine())
    start = revision_of(engine)
    goal = add_revision(history, "bbbb00000001", ADD_PRIORITY)
    with locked_run() as run:
        result = guarded_change(run, DirectSteps(), _upgrade(start, goal))
    assert result.status == Status.SUCCEEDED and result.failure is None
    assert revision_of(engine) == goal and goal in result.revision_seconds
    assert [step.name for step in run.timeline.steps] == ["backup", "upgrade", "probe"]
    assert run.backup.revision == start and run.backup.path.exists()
    assert [row["status"] for row in ledger_rows(engine)] == ["running"]  # the caller closes it


def test_a_failed_probe_is_undone_by_the_downgrade(migration_target, history):
    engine = at_head_with_rows(migration_target.engine())
    start, before = revision_of(engine), checksums(engine)
    add_revision(history, "bbbb00000002", BREAK_APPLICATION)
    with locked_run() as run:
        result = guarded_change(run, DirectSteps(), _upgrade(start, "bbbb00000002"))
    assert result.status == Status.ROLLED_BACK and result.undone_by == WayBack.DOWNGRADE
    assert "missing column workflows.description" in result.failure
    assert result.tried == () and not run.changing
    assert revision_of(engine) == start and checksums(engine) == before


@pytest.mark.both_dialects
def test_a_failed_downgrade_is_undone_by_the_backup(migration_target, history):
    engine = at_head_with_rows(migration_target.engine())
    start, before = revision_of(engine), checksums(engine)
    add_revision(history, "bbbb00000003", FAILING_DOWNGRADE)
    with locked_run() as run:
        result = guarded_change(run, DirectSteps(), _upgrade(start, "bbbb00000003"))
    assert result.status == Status.RESTORED and result.undone_by == WayBack.RESTORE
    assert [way for way, _why in result.tried] == [WayBack.DOWNGRADE]
    assert result.recovery.succeeded and result.recovery.restored.before_restore_dump
    assert revision_of(engine) == start and checksums(engine) == before
    # The restore rewound the ledger table; the sequence put the run's row back.
    assert [row["status"] for row in ledger_rows(engine)] == ["running"]
    assert httpx.get(migration_target.health_url).status_code == 200


@pytest.mark.both_dialects
def test_a_failed_revision_is_undone_by_its_own_transaction(migration_target, history):
    engine = at_head_with_rows(migration_target.engine())
    start, columns = revision_of(engine), schema(engine)
    add_revision(history, "bbbb00000004", FAILING_UPGRADE)
    with locked_run() as run:
        result = guarded_change(run, DirectSteps(), _upgrade(start, "bbbb00000004"))
    assert result.status == Status.FAILED and result.undone_by == WayBack.TRANSACTION
    assert "revision bbbb00000004" in result.failure and not result.partly_applied
    assert revision_of(engine) == start and schema(engine) == columns


def test_a_database_that_moved_is_refused_before_the_backup(migration_target, history):
    engine = at_head_with_rows(migration_target.engine())
    with locked_run() as run, pytest.raises(PreflightRefused, match="the database moved"):
        guarded_change(run, DirectSteps(), _upgrade("0000000000aa", "bbbb00000005"))
    assert run.backup is None and ledger_rows(engine) == []


def test_a_restore_that_cannot_keep_the_current_state_changes_nothing(
    migration_target, tmp_path, monkeypatch
):
    engine = at_head_with_rows(migration_target.engine())
    steps = DirectSteps()
    backup = steps.backup(resolve_target("app"), fast_policy().backup, label="manual",
                          database_bytes=0)  # fmt: skip
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM workflow_executions")
    before = checksums(engine)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("AUTOPR_DB_APP_BACKUP_DIR", str(tmp_path / "a-file" / "backups"))
    recovery = restore_and_probe(steps, Timeline(), resolve_target("app"), backup, fast_policy(),
                                 rewrite_ledger=lambda: None, require_dump=True)  # fmt: skip
    assert recovery.stopped_at == Stage.DUMP and "nothing was restored" in recovery.problem
    assert recovery.restored is None and checksums(engine) == before
