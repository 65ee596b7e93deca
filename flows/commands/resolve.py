"""``autopr-migrate resolve``: settle a ledger row left ``running`` by a run that crashed.

It never guesses. It shows the row, where the database is now and whether the run's backup
is intact, and it marks the row only when the operator says how and the facts allow it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

from flows import alembic_ops
from flows.database import connect
from flows.errors import ConfigurationError, PreflightRefused
from flows.steps import ledger
from flows.steps.backup import digest, load_backup
from flows.targets import Target

MARKS = {"rolled-back": ledger.ROLLED_BACK, "failed": ledger.FAILED}


def describe(target: Target) -> tuple[list[ledger.LedgerRow], str | None, list[str]]:
    with connect(target) as connection:
        rows = ledger.unfinished(connection)
        current = alembic_ops.current(connection)
    lines = [f"target {target.name} is at {current or 'base'}"]
    if not rows:
        return rows, current, [*lines, "no unfinished runs in the ledger: nothing to resolve"]
    for row in rows:
        lines += [
            f"ledger row {row.id}: flow run {row.flow_run_name or row.flow_run_id}, started "
            f"{row.started_at:%Y-%m-%d %H:%M:%S} UTC, {row.from_revision or 'base'} -> "
            f"{row.to_revision}",
            f"  backup: {_backup_state(row.backup_path)}",
            f"  {_advice(row, current)}",
        ]
    return rows, current, lines


def mark(target: Target, how: str) -> str:
    """Mark the unfinished row; ``rolled-back`` only if the database is back at its start."""
    if how not in MARKS:
        raise ConfigurationError(f"--mark must be one of {', '.join(MARKS)}, not {how!r}")
    rows, current, _ = describe(target)
    if not rows:
        return "nothing to resolve"
    row = rows[-1]
    if how == "rolled-back" and current != row.from_revision:
        raise PreflightRefused(
            f"the database is at {current or 'base'}, not at the run's starting revision "
            f"{row.from_revision or 'base'}: restore its backup first, or mark it failed"
        )
    with connect(target) as connection, connection.begin():
        connection.execute(
            update(ledger.ledger)
            .where(ledger.ledger.c.id == row.id)
            .values(
                status=MARKS[how],
                finished_at=datetime.now(UTC),
                message=f"resolved by an operator: marked {how} at revision {current or 'base'}",
            )
        )
    return f"ledger row {row.id} marked {MARKS[how]}"


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
    if current == row.from_revision:
        return (
            "the database is at the run's starting revision: check /health, then "
            "`--mark rolled-back --yes`"
        )
    if current == row.to_revision:
        return (
            "the database reached the run's target revision, but the run never verified "
            "it: check /health; if it is healthy and you keep it, `--mark failed --yes` and "
            "record why; otherwise restore the backup"
        )
    return (
        "the database is between the run's revisions: restore the backup (pg_restore --clean "
        "--if-exists --single-transaction), then `--mark rolled-back --yes`"
    )
