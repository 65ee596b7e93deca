"""The guarded change: every change the tool makes to a database goes through this sequence.

Under the run's locks: prove the locks are still held, re-read the revision, back up, open the
ledger row, change (upgrade or downgrade), probe the application. If the change or the probe
fails, put the database back, trying each way in order:

1. the failed revision's own transaction rolled back (an upgrade that reached nothing: checked,
   and INVALID indexes a concurrent build left are dropped);
2. Alembic downgrade to the starting revision, then a probe (upgrades only);
3. restore the backup taken at the start (``recovery.restore_and_probe``).

The result is typed: what failed, what put the database back, what was tried and did not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from sqlalchemy import Connection

from autopr_migrate.backends.connections import connect
from autopr_migrate.backends.registry import backend_for
from autopr_migrate.errors import HealthCheckFailed, PreflightRefused, UpgradeFailed, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.model import Operation, Status
from autopr_migrate.operations.preflight import PreflightReport
from autopr_migrate.operations.recovery import Recovery, problem_of, restore_and_probe
from autopr_migrate.operations.steps import Steps
from autopr_migrate.operations.timeline import Timeline
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.store.backups import Backup
from autopr_migrate.targets.targets import Target


class WayBack(StrEnum):
    TRANSACTION = "transaction"
    DOWNGRADE = "downgrade"
    RESTORE = "restore"


@dataclass(frozen=True)
class Change:
    """What is about to change: from where, to where, and what the run knows around it."""

    operation: Operation
    start: str | None
    goal: str | None
    database_bytes: int
    checksums: dict[str, str] = field(default_factory=dict)
    application_expected: bool = True
    invalid_indexes: frozenset[str] = frozenset()

    @property
    def backup_label(self) -> str:
        return f"pre-{self.operation}"

    @classmethod
    def upgrade(cls, checks: PreflightReport, checksums: dict[str, str]) -> Change:
        """The upgrade preflight planned; ``checksums`` go into the ledger row."""
        return cls(Operation.UPGRADE, checks.current, checks.target_revision,
                   checks.database_bytes, checksums, checks.application_expected,
                   checks.invalid_indexes)  # fmt: skip

    @classmethod
    def downgrade(cls, checks: PreflightReport, checksums: dict[str, str]) -> Change:
        return cls(Operation.DOWNGRADE, checks.current, checks.target_revision,
                   checks.database_bytes, checksums)  # fmt: skip


@dataclass(frozen=True)
class ChangeResult:
    """How a guarded change ended.

    ``failure`` is what went wrong (None: the change held and the application is healthy);
    ``reached`` the revision a failed upgrade had got to when that was not the start;
    ``undone_by`` the way back that worked; ``tried`` the ways back that did not, with why.
    """

    status: Status
    failure: str | None = None
    reached: str | None = None
    partly_applied: bool = False
    undone_by: WayBack | None = None
    tried: tuple[tuple[WayBack, str], ...] = ()
    dropped_indexes: tuple[str, ...] = ()
    unverified: str | None = None  # the leftover check that could not run
    recovery: Recovery | None = None
    revision_seconds: dict[str, float] = field(default_factory=dict)


class GuardedRun(Protocol):
    """What the sequence needs from the run it is part of (a flow run, for instance)."""

    target: Target
    policy: MigrationPolicy
    timeline: Timeline
    backup: Backup | None
    changing: bool  # True from the moment the database may be touched until it is known back

    @property
    def connection(self) -> Connection:
        """The connection that holds the database's migration lock, and changes it."""
        ...

    def verify_locks(self, moment: str) -> None: ...

    def hold_database_lock(self) -> None:
        """Make sure the migrating session still holds the database lock (before an undo)."""
        ...

    def open_ledger_row(self, checksums: dict[str, str]) -> None: ...

    def rewrite_ledger_row(self) -> None:
        """A restore rewinds the ledger table too: put this run's ``running`` row back."""
        ...


def refuse_if_moved(target: Target, connection: Connection, start: str | None) -> None:
    now = alembic_ops.current(target.project, connection)
    connection.rollback()
    if now != start:
        raise PreflightRefused(
            f"the database moved from {start or 'base'} to {now or 'base'} since the plan was "
            f"made (someone else migrated it); start a new run to plan again"
        )


def guarded_change(run: GuardedRun, steps: Steps, change: Change) -> ChangeResult:
    """Back up, open the ledger row, change, probe; put the database back on failure.

    Raises (before anything changed): ``LockLost``, ``PreflightRefused`` (the database moved),
    ``BackupFailed``.
    """
    run.verify_locks("the backup")
    refuse_if_moved(run.target, run.connection, change.start)
    with run.timeline.step("backup"):
        run.backup = steps.backup(
            run.target,
            run.policy.backup,
            label=change.backup_label,
            database_bytes=change.database_bytes,
        )
    run.open_ledger_row(change.checksums)
    run.verify_locks(f"the {change.operation}")
    run.changing = True
    try:
        with run.timeline.step(str(change.operation)):
            seconds = _apply(run, steps, change)
    except Exception as exc:  # whatever broke, the database must be put back
        return _after_failed_change(run, steps, change, exc)
    try:
        with run.timeline.step("probe"):
            steps.probe(
                run.target,
                change.goal,
                run.policy.probe,
                application_expected=change.application_expected,
            )
    except Exception as exc:  # a probe that cannot prove health counts as unhealthy
        reason = str(exc) if isinstance(exc, HealthCheckFailed) else describe(exc)
        return _put_back(run, steps, change, reason)
    run.changing = False
    return ChangeResult(Status.SUCCEEDED, revision_seconds=seconds)


def _apply(run: GuardedRun, steps: Steps, change: Change) -> dict[str, float]:
    if change.operation == Operation.UPGRADE:
        return steps.upgrade(run.connection, run.target, change.goal, run.policy).durations
    steps.downgrade(run.connection, run.target, change.goal, run.policy)
    return {}


def _after_failed_change(
    run: GuardedRun, steps: Steps, change: Change, exc: Exception
) -> ChangeResult:
    """An upgrade that committed nothing needs no undo (after checking); anything else does."""
    if change.operation != Operation.UPGRADE:
        return _put_back(run, steps, change, problem_of(exc))
    reason = str(exc) if isinstance(exc, UpgradeFailed) else f"the upgrade failed: {describe(exc)}"
    with connect(run.target) as reader:
        reached = alembic_ops.current(run.target.project, reader)
    if reached != change.start:
        return _put_back(run, steps, change, reason, reached=reached, partly_applied=True)
    try:
        with run.timeline.step("check leftovers"):
            with connect(run.target) as connection:
                leftovers = backend_for(run.target).invalid_indexes(connection)
            leftovers -= change.invalid_indexes
            if leftovers:
                steps.drop_invalid_indexes(run.target, leftovers)
    except Exception as exc:  # the revision did not commit, but something may be left over
        return ChangeResult(Status.FAILED, reason, unverified=describe(exc))
    run.changing = False
    return ChangeResult(
        Status.FAILED,
        reason,
        undone_by=WayBack.TRANSACTION,
        dropped_indexes=tuple(sorted(leftovers)),
    )


def _put_back(
    run: GuardedRun,
    steps: Steps,
    change: Change,
    reason: str,
    *,
    reached: str | None = None,
    partly_applied: bool = False,
) -> ChangeResult:
    failed = {"failure": reason, "reached": reached, "partly_applied": partly_applied}
    tried: tuple[tuple[WayBack, str], ...] = ()
    if change.operation == Operation.UPGRADE:
        try:
            run.hold_database_lock()
            with run.timeline.step("downgrade"):
                steps.downgrade(run.connection, run.target, change.start, run.policy)
            with run.timeline.step("probe after downgrade"):
                steps.probe(
                    run.target,
                    change.start,
                    run.policy.probe,
                    application_expected=change.application_expected,
                    after="downgrade",
                )
            run.changing = False
            return ChangeResult(Status.ROLLED_BACK, **failed, undone_by=WayBack.DOWNGRADE)
        except Exception as exc:  # any failure here means the backup must come back
            tried = ((WayBack.DOWNGRADE, problem_of(exc)),)
    recovery = restore_and_probe(
        steps,
        run.timeline,
        run.target,
        run.backup,
        run.policy,
        rewrite_ledger=run.rewrite_ledger_row,
        application_expected=change.application_expected,
    )
    if not recovery.succeeded:
        tried += ((WayBack.RESTORE, recovery.problem or ""),)
        return ChangeResult(Status.FAILED, **failed, tried=tried, recovery=recovery)
    run.changing = False
    return ChangeResult(
        Status.RESTORED, **failed, undone_by=WayBack.RESTORE, tried=tried, recovery=recovery
    )
