"""``autopr-migrate resolve``: settle a ledger row left ``running`` by a run that crashed.

It never guesses. It shows the row, where the database is now, whether the application answers
and whether the run's backup is intact, and recommends one of the safe choices:

- ``rolled-back``: mark the row, only once the database is verified back at the run's start;
- ``restore``: restore the run's own backup (after dumping the current state), verify the
  revision and row counts, probe the application, and record the row as restored;
- ``failed``: mark the row and take the database as it is (the operator's call).

Before acting it takes the database's migration lock, so it cannot act while the run is still
alive somewhere. After acting it releases what the dead run still held in Prefect: it marks the
flow run Crashed and frees the target's concurrency limit, so the next migration can start.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prefect.logging import disable_run_logger
from sqlalchemy import Connection, insert, select, update

from autopr_migrate.backends.connections import connect
from autopr_migrate.errors import (
    BackupFailed,
    ConfigurationError,
    LockUnavailable,
    PreflightRefused,
    RestoreFailed,
)
from autopr_migrate.errors import describe as describe_error
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.orchestration.dead_run import release_dead_run
from autopr_migrate.orchestration.steps.lock import database_lock
from autopr_migrate.orchestration.steps.probe import check_health, probe_health
from autopr_migrate.orchestration.steps.restore import restore_backup
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


def describe(target: Target) -> Situation:
    with connect(target) as connection:
        rows = ledger.unfinished(connection)
        current = alembic_ops.current(connection)
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


def resolve(target: Target, action: str) -> list[str]:
    """Carry out ``action`` for the newest unfinished row; raise to refuse, changing nothing.

    The facts are read again once the database lock is held: a run that finished meanwhile is
    left alone.
    """
    if action not in ACTIONS:
        raise ConfigurationError(f"choose one of {', '.join(ACTIONS)}, not {action!r}")
    with connect(target) as connection, _still_alive_guard(connection, target):
        situation = describe(target)
        row = situation.row
        if row is None:
            return ["nothing to resolve"]
        if action == "restore":
            lines = _restore(target, row)
        else:
            lines = [_mark(target, row, action, situation.current)]
    return lines + release_dead_run(target, row.flow_run_id)


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


def _restore(target: Target, row: ledger.LedgerRow) -> list[str]:
    backup = _verified_backup(row)
    full_row = _read_row(target, row.id)
    policy = MigrationPolicy()
    with disable_run_logger():
        try:
            restored = restore_backup.fn(target, backup, policy.backup, require_dump=True)
        except (RestoreFailed, BackupFailed) as exc:
            raise RestoreFailed(f"{exc}; ledger row {row.id} still says running") from None
        # The backup predates the run, so the restore took its ledger row away: put it back.
        _reinsert(target, full_row)
        try:
            probe_health.fn(target, backup.revision, policy.probe)
        except Exception as exc:  # restored, but the application does not come back
            message = (f"restored {backup.path.name} but the application is not healthy "
                       f"({describe_error(exc)})")  # fmt: skip
            _close_row(target, row, ledger.FAILED, f"resolved by an operator: {message}")
            raise PreflightRefused(f"{message}; ledger row {row.id} marked failed") from None
    message = (f"resolved by an operator: restored {backup.path.name}; the state before was "
               f"dumped to {restored.broken_state_dump}")  # fmt: skip
    _close_row(target, row, ledger.RESTORED, message)
    counts = (f"; row counts differ from the backup in {', '.join(restored.count_differences)}"
              if restored.count_differences else "")  # fmt: skip
    return [
        f"restored {backup.path.name} ({restored.method}, {restored.seconds:.1f} s): the "
        f"database is at {backup.revision or 'base'} and the application is healthy{counts}",
        f"the state before the restore was dumped to {restored.broken_state_dump}",
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
    try:
        lock = database_lock(connection, target, wait_seconds=LOCK_WAIT_SECONDS)
        lock.__enter__()
    except LockUnavailable as exc:
        raise PreflightRefused(
            f"{exc}: the run may still be alive; let it finish or stop it, then resolve"
        ) from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def _read_row(target: Target, row_id: int) -> dict:
    with connect(target) as connection:
        found = connection.execute(
            select(ledger.ledger).where(ledger.ledger.c.id == row_id)
        ).mappings().one()  # fmt: skip
        return dict(found)


def _reinsert(target: Target, values: dict) -> None:
    with connect(target) as connection, connection.begin():
        ledger.ledger.create(connection, checkfirst=True)
        exists = connection.execute(
            select(ledger.ledger.c.id).where(ledger.ledger.c.id == values["id"])
        ).first()  # fmt: skip
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
