"""Settle a ledger row left ``running`` by a run that crashed (``autopr-migrate resolve``).

It never guesses. It shows the row, where the database is now, whether the application answers
and whether the run's backup is intact, and recommends one of the safe choices:

- ``rolled-back``: mark the row, only once the database is verified back at the run's start;
- ``restore``: restore the run's own backup (after dumping the current state), verify the
  revision and row counts, probe the application, and record the row as restored;
- ``failed``: mark the row and take the database as it is (the operator's call).

Before acting it takes the database's migration lock, so it cannot act while the run is still
alive somewhere. (Afterwards the command releases what the dead run still held in Prefect.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, insert, select, update

from autopr_migrate.backends.connections import connect
from autopr_migrate.backends.registry import backend_for
from autopr_migrate.errors import (
    BackupFailed,
    ConfigurationError,
    LockUnavailable,
    PreflightRefused,
    RestoreFailed,
)
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.operations.probe import check_health
from autopr_migrate.operations.recovery import Stage, restore_and_probe
from autopr_migrate.operations.steps import DirectSteps, Steps
from autopr_migrate.operations.timeline import Timeline
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.store import ledger
from autopr_migrate.store.backups import Backup, digest, load_backup
from autopr_migrate.targets.targets import Target

MARKS = {"rolled-back": ledger.ROLLED_BACK, "failed": ledger.FAILED}
ACTIONS = ("rolled-back", "restore", "failed")
LOCK_WAIT_SECONDS = 3


@dataclass(frozen=True)
class Situation:
    rows: list[ledger.LedgerRow]
    current: str | None
    lines: list[str]

    @property
    def row(self) -> ledger.LedgerRow | None:
        return self.rows[-1] if self.rows else None

    def recommended(self) -> str | None:
        """What ``--yes`` without a choice does: the choice that loses the least."""
        row = self.row
        if row is None:
            return None
        if self.current == row.from_revision and row.operation != "restore":
            return "rolled-back"
        return "restore" if _backup_state(row.backup_path).endswith("sha256 verified)") else None


@dataclass(frozen=True)
class Resolution:
    """What was done, in lines for the operator, and the row it settled (None: nothing to do)."""

    row: ledger.LedgerRow | None
    lines: list[str]


def situation_of(target: Target) -> Situation:
    """The unfinished rows, where the database is, the application, the backups, the advice."""
    with connect(target) as connection:
        rows = ledger.unfinished(connection)
        current = alembic_ops.current(target.project, connection)
    snapshot = check_health(target.health_url, timeout=5)
    health = "answers 200" if snapshot.healthy else snapshot.reason
    lines = [
        f"target {target.name} is at {current or 'base'}; the application "
        f"({target.masked_health_url}) {health}"
    ]
    if not rows:
        lines.append("no unfinished runs in the ledger: nothing to resolve")
        return Situation(rows, current, lines)
    for row in rows:
        lines += [
            f"ledger row {row.id}: flow run {row.flow_run_name or row.flow_run_id}, started "
            f"{row.started_at:%Y-%m-%d %H:%M:%S} UTC, {row.operation} "
            f"{row.from_revision or 'base'} -> {row.to_revision or 'base'}",
            f"  backup: {_backup_state(row.backup_path)}",
            f"  {_advice(row, current)}",
        ]
    situation = Situation(rows, current, lines)
    lines.append(_recommendation(target, situation.recommended()))
    return situation


def _recommendation(target: Target, choice: str | None) -> str:
    if choice is None:
        return (
            "recommended: nothing automatic (no verified backup): put the database right by "
            f"hand, then `autopr-migrate resolve --target {target.name} --mark failed --yes`"
        )
    flag = "--restore" if choice == "restore" else f"--mark {choice}"
    return f"recommended: `autopr-migrate resolve --target {target.name} {flag} --yes`"


def resolve(target: Target, action: str, *, steps: Steps | None = None) -> Resolution:
    """Carry out ``action`` for the newest unfinished row; raise to refuse, changing nothing.

    The facts are read again once the database lock is held: a run that finished meanwhile is
    left alone.
    """
    if action not in ACTIONS:
        raise ConfigurationError(f"choose one of {', '.join(ACTIONS)}, not {action!r}")
    with connect(target) as connection, _still_alive_guard(connection, target):
        situation = situation_of(target)
        row = situation.row
        if row is None:
            return Resolution(None, ["nothing to resolve"])
        if action == "restore":
            lines = _restore(target, row, steps or DirectSteps())
        else:
            lines = [_mark(target, row, action, situation.current)]
    return Resolution(row, lines)


def _mark(target: Target, row: ledger.LedgerRow, how: str, current: str | None) -> str:
    if how == "rolled-back" and row.operation == "restore":
        raise PreflightRefused(
            f"ledger row {row.id} is a restore that never finished: the database may be half "
            f"restored whatever its revision says. Run it again (`--restore`), or mark it failed"
        )
    if how == "rolled-back" and current != row.from_revision:
        raise PreflightRefused(
            f"the database is at {current or 'base'}, not at the run's starting revision "
            f"{row.from_revision or 'base'}: restore its backup first (`--restore`), or mark "
            f"it failed"
        )
    message = f"resolved by an operator: marked {how} at revision {current or 'base'}"
    _close_row(target, row, MARKS[how], message)
    return f"ledger row {row.id} marked {MARKS[how]}"


def _restore(target: Target, row: ledger.LedgerRow, steps: Steps) -> list[str]:
    backup = _verified_backup(row)
    full_row = _read_row(target, row.id)
    # The backup predates the run, so the restore takes its ledger row away: put it back.
    recovery = restore_and_probe(
        steps,
        Timeline(),
        target,
        backup,
        MigrationPolicy(),
        rewrite_ledger=lambda: _reinsert(target, full_row),
        require_dump=True,
    )
    if recovery.stopped_at in (Stage.DUMP, Stage.RESTORE):
        if not isinstance(recovery.error, RestoreFailed | BackupFailed):
            raise recovery.error  # not the restore's own failure: its own class and exit code
        raise RestoreFailed(f"{recovery.problem}; ledger row {row.id} still says running")
    if recovery.stopped_at == Stage.PROBE:  # restored, but the application does not come back
        message = (
            f"restored {backup.path.name} but the application is not healthy ({recovery.problem})"
        )
        _close_row(target, row, ledger.FAILED, f"resolved by an operator: {message}")
        raise PreflightRefused(f"{message}; ledger row {row.id} marked failed")
    restored = recovery.restored
    message = (
        f"resolved by an operator: restored {backup.path.name}; the state before was "
        f"{restored.state_before}"
    )
    _close_row(target, row, ledger.RESTORED, message)
    counts = (
        f"; row counts differ from the backup in {', '.join(restored.count_differences)}"
        if restored.count_differences
        else ""
    )
    return [
        f"restored {backup.path.name} ({restored.method}, {restored.seconds:.1f} s): the "
        f"database is at {backup.revision or 'base'} and the application is healthy{counts}",
        f"the state before the restore was {restored.state_before}",
        f"ledger row {row.id} marked {ledger.RESTORED}",
    ]


def _verified_backup(row: ledger.LedgerRow) -> Backup:
    if not row.backup_path or not Path(row.backup_path).exists():
        raise PreflightRefused(
            f"ledger row {row.id} names no backup that still exists ({row.backup_path or 'none'})"
            f": mark it failed (`--mark failed --yes`), then restore another backup with the "
            f"rollback flow (mode=restore)"
        )
    backup = load_backup(Path(row.backup_path))
    if digest(backup.path) != backup.sha256:
        raise PreflightRefused(
            f"the backup {backup.path.name} no longer matches its sha256: it was not restored"
        )
    return backup


@contextmanager
def _still_alive_guard(connection: Connection, target: Target) -> Iterator[None]:
    """Hold the database's migration lock: a run still migrating somewhere holds it."""
    held = ExitStack()
    lock = backend_for(target).database_lock(connection, target, wait_seconds=LOCK_WAIT_SECONDS)
    try:
        held.enter_context(lock)
    except LockUnavailable as exc:
        raise PreflightRefused(
            f"{exc}: the run may still be alive; let it finish or stop it, then resolve"
        ) from None
    with held:
        yield


def _read_row(target: Target, row_id: int) -> dict:
    with connect(target) as connection:
        found = (
            connection.execute(
                select(*ledger.present_columns(connection)).where(ledger.ledger.c.id == row_id)
            )
            .mappings()
            .one()
        )
        return dict(found)


def _reinsert(target: Target, values: dict) -> None:
    with connect(target) as connection, connection.begin():
        ledger.ensure_table(connection)
        exists = connection.execute(
            select(ledger.ledger.c.id).where(ledger.ledger.c.id == values["id"])
        ).first()
        if exists is None:
            connection.execute(insert(ledger.ledger).values(**values))


def _close_row(target: Target, row: ledger.LedgerRow, status: str, message: str) -> None:
    finished = datetime.now(UTC)
    with connect(target) as connection, connection.begin():
        connection.execute(
            update(ledger.ledger)
            .where(ledger.ledger.c.id == row.id, ledger.ledger.c.status == ledger.RUNNING)
            .values(
                status=status,
                finished_at=finished,
                message=message,
                duration_seconds=(finished - row.started_at).total_seconds(),
            )
        )


def _backup_state(path: str | None) -> str:
    if not path:
        return "none was taken"
    backup_path = Path(path)
    if not backup_path.exists():
        return f"{path} is missing"
    try:
        backup = load_backup(backup_path)
    except (OSError, ValueError, TypeError):
        return f"{path} has no readable sidecar"
    intact = digest(backup_path) == backup.sha256
    return f"{path} ({'sha256 verified' if intact else 'DOES NOT MATCH its sha256'})"


def _advice(row: ledger.LedgerRow, current: str | None) -> str:
    if row.operation == "restore":
        return (
            "a restore that never finished may have left the database half restored: run it again"
        )
    if current == row.from_revision:
        return (
            "the database is at the run's starting revision (the killed transaction rolled "
            "back): mark it rolled back"
        )
    if current == row.to_revision:
        return (
            "the database reached the run's target revision, but the run never verified it: "
            "restore the backup, or if /health is fine and you keep it, mark it failed and "
            "record why"
        )
    return "the database is between the run's revisions: restore the backup"
