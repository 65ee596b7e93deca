"""What a run knows about itself as it goes, and how it ends: ledger, report, final event.

``Run`` is what the guarded change and the restore sequence need from a flow run: the locks,
the migrating connection, the ledger row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from prefect import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from autopr_migrate.backends.connections import connect
from autopr_migrate.backends.registry import backend_for
from autopr_migrate.errors import MigrationError, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.operations.preflight import PreflightReport
from autopr_migrate.operations.timeline import Timeline
from autopr_migrate.orchestration import events
from autopr_migrate.orchestration.outcome import Outcome
from autopr_migrate.orchestration.steps.approval import Approval
from autopr_migrate.orchestration.steps.lock import MigrationLocks, migration_locks
from autopr_migrate.orchestration.steps.report import Report, write_report
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.store import ledger
from autopr_migrate.store.backups import Backup
from autopr_migrate.targets.targets import Target

_EVENTS = {
    ledger.SUCCEEDED: events.SUCCEEDED,
    ledger.ROLLED_BACK: events.ROLLED_BACK,
    ledger.RESTORED: events.RESTORED,
    ledger.FAILED: events.FAILED,
}


@dataclass
class Run:
    target: Target
    policy: MigrationPolicy
    report: Report
    timeline: Timeline
    checks: PreflightReport | None = None
    locks: MigrationLocks | None = None
    backup: Backup | None = None
    entry: ledger.Entry | None = None
    approval: Approval | None = None
    requested_by: str = ""
    # True from the moment the upgrade may have touched the database until it is known back.
    changing: bool = False
    found_at: str | None = None  # the revision read right after the locks were taken
    found: bool = False

    @classmethod
    def begin(
        cls,
        target: Target,
        policy: MigrationPolicy,
        requested_by: str,
        *,
        to_revision: str | None = None,
    ) -> Run:
        report = Report(target.name, target.masked_url, ledger.FAILED, "", to_revision=to_revision)
        return cls(target, policy, report, Timeline(), requested_by=requested_by)

    def under_locks(self, body: Callable[[], Outcome]) -> Outcome:
        """Take the locks, run ``body``, and end every way the same: ledger, report, event."""
        try:
            with migration_locks(self.target, self.policy) as self.locks:
                self.note_start()
                outcome = body()
                outcome.message += "".join(f"; {note}" for note in self.locks.notes)
                finish(self, outcome)
        except Exception as exc:  # every failure ends the same way: report, ledger, event
            outcome = self.failure(exc)
            finish(self, outcome)
        except BaseException as exc:  # cancelled or killed from outside: record it, then go
            finish(self, self.failure(exc))
            raise
        return outcome

    def record_approval(self, approval: Approval) -> None:
        self.approval = approval
        self.report.approved_by, self.report.approval_reason = approval.approver, approval.reason

    def note_start(self) -> None:
        """Read the revision under the locks: what "nothing was changed" is checked against."""
        self.found_at, self.found = alembic_ops.current(self.target.project, self.connection), True
        self.connection.rollback()  # never idle in a transaction through the approval pause

    @property
    def connection(self) -> Connection:
        """The connection that holds the database's migration lock, and migrates."""
        return self.locks.connection

    def verify_locks(self, moment: str) -> None:
        self.locks.verify(moment)

    def hold_database_lock(self) -> None:
        backend_for(self.target).ensure_locked(self.connection, self.target)

    def open_ledger_row(self, checksums: dict[str, str]) -> None:
        self.report.backup = self.backup.path.name
        self.start_ledger(checksums, operation=self.checks.operation)
        events.emit(
            self.target,
            events.STARTED,
            operation=self.checks.operation,
            from_revision=self.report.from_revision,
            to_revision=self.report.to_revision,
            backup=self.backup.path.name,
        )

    def rewrite_ledger_row(self) -> None:
        self.rewrite_ledger()

    def failure(self, exc: BaseException) -> Outcome:
        """The outcome of a run any exception ended: what broke, and the state it left."""
        if isinstance(exc, MigrationError):
            reason = str(exc)
        elif not isinstance(exc, Exception):  # cancelled, or the process told to stop
            reason = f"the run was stopped from outside ({type(exc).__name__})"
        else:
            reason = f"the run broke on an unexpected error: {describe(exc)}"
            get_run_logger().error("unexpected error", exc_info=exc)
        return Outcome(ledger.FAILED, f"{reason}; {self.state_after_error()}")

    def state_after_error(self) -> str:
        """What the run left; "nothing was changed" only once the revision is read back."""
        kept = f"; its backup {self.backup.path} is kept" if self.backup else ""
        if self.changing:
            return (
                "the upgrade had started, so the database may be changed: check its revision "
                f"and health, and restore the backup {self.backup.path if self.backup else ''} "
                "if needed"
            )
        if not self.found:
            return "nothing was changed: the run stopped before it read the database under its lock"
        start = self.found_at
        try:
            now = current_revision(self)
        except Exception as exc:  # the verdict must not hide the error that ended the run
            return (
                f"the run stopped before changing anything, but the database's revision "
                f"could not be read back to verify that ({describe(exc)}){kept}"
            )
        if now == start:
            return f"nothing was changed (verified: the database is at {now or 'base'}){kept}"
        return (
            f"the database is at {now or 'base'}, not at {start or 'base'} where this run "
            f"found it: check who changed it{kept}"
        )

    def start_ledger(self, checksums: dict[str, str], *, operation: str) -> None:
        approval, requested_by = self.approval, self.requested_by
        with connect(self.target) as connection:
            self.entry = ledger.start(
                connection,
                target=self.target.name,
                operation=operation,
                from_revision=self.report.from_revision,
                to_revision=self.report.to_revision,
                revision_checksums=checksums,
                flow_run_id=str(flow_run.id),
                flow_run_name=flow_run.name,
                approved_by=approval.approver,
                approval_reason=approval.reason,
                requested_by=requested_by or None,
                backup_path=str(self.backup.path),
                backup_sha256=self.backup.sha256,
            )

    def rewrite_ledger(self) -> None:
        """A restore rewinds the ledger table too: put this run's ``running`` row back."""
        self._write_ledger(lambda connection: ledger.rewrite(connection, self.entry))

    def finish_ledger(self, outcome: Outcome) -> None:
        if self.entry is None:
            return
        self._write_ledger(
            lambda connection: ledger.finish(
                connection,
                self.entry,
                status=outcome.status,
                timings=self.timeline.as_dict(),
                message=outcome.message,
                impact=(
                    json.dumps(self.report.impact, sort_keys=True) if self.report.impact else None
                ),
            )
        )

    def _write_ledger(self, write) -> None:
        if self.entry is None:
            return
        try:
            with connect(self.target) as connection:
                write(connection)
        except (MigrationError, DBAPIError) as exc:
            get_run_logger().error(
                "could not write ledger row %s: %s; it may still say 'running'",
                self.entry.id,
                describe(exc),
            )


def current_revision(run: Run) -> str | None:
    """The database's revision, read on a fresh connection (the migrating one may be gone)."""
    with connect(run.target) as connection:
        return alembic_ops.current(run.target.project, connection)


def finish(run: Run, outcome: Outcome) -> None:
    """Ledger row, report artifact, final event: each tried even if another fails.

    It never raises: a Prefect API that blinks while the report is written must not turn a
    finished migration into a failed one.
    """
    run.report.status, run.report.message = outcome.status, outcome.message
    run.finish_ledger(outcome)
    event = outcome.event or _EVENTS.get(outcome.status)
    for what, write in (
        ("the report artifact", lambda: write_report(run.report, run.timeline)),
        (
            "the final event",
            lambda: (
                event
                and events.emit(
                    run.target,
                    event,
                    status=outcome.status,
                    message=outcome.message,
                    from_revision=run.report.from_revision,
                    to_revision=run.report.to_revision,
                )
            ),
        ),
    ):
        try:
            write()
        except Exception as exc:  # the outcome stands; say what could not be recorded
            get_run_logger().error("could not write %s: %s", what, describe(exc))


def refused_at_start(exc: Exception) -> State:
    """Bad input, found before any target was touched: one line, and no ledger or event."""
    reason = str(exc) if isinstance(exc, MigrationError) else describe(exc)
    message = f"{reason}; nothing was changed: the run stopped before it touched any database"
    get_run_logger().error("%s", message)
    return Failed(message=message)
