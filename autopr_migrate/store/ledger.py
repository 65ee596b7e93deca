"""The migration ledger: one row per run in the target database's ``autopr_migration_ledger``.

The tool owns the table (``env.py`` hides it from autogenerate). Rows are written on their own
short transactions, never on the migrating connection, so a ledger write survives a failed
migration and a row left ``running`` tells the next preflight that a run crashed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    inspect,
    select,
    update,
)

from autopr_migrate.model import LEDGER_TABLE, Status

# Plain strings in the table; the names the rest of the code compares with.
RUNNING = Status.RUNNING.value
SUCCEEDED = Status.SUCCEEDED.value
ROLLED_BACK = Status.ROLLED_BACK.value
RESTORED = Status.RESTORED.value
FAILED = Status.FAILED.value

ledger = Table(
    LEDGER_TABLE,
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target", String(40), nullable=False),
    Column("operation", String(20), nullable=False, default="upgrade"),
    Column("status", String(20), nullable=False),
    Column("from_revision", String(64)),
    Column("to_revision", String(64)),
    Column("revision_checksums", Text, nullable=False, default="{}"),
    Column("flow_run_id", String(36)),
    Column("flow_run_name", String(200)),
    Column("requested_by", String(200)),
    Column("approved_by", String(200)),
    Column("approval_reason", Text),
    Column("backup_path", Text),
    Column("backup_sha256", String(64)),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("duration_seconds", Float),
    Column("timings", Text),
    Column("message", Text),
    Column("impact", Text),  # JSON: what the application felt, on the copy and in the upgrade
)
# Columns added since the table was first written; older ledgers get them on the next write.
_ADDED_COLUMNS = ("impact",)


@dataclass(frozen=True)
class LedgerRow:
    id: int
    status: str
    from_revision: str | None
    to_revision: str | None
    flow_run_id: str | None
    flow_run_name: str | None
    backup_path: str | None
    started_at: datetime
    operation: str = "upgrade"


def exists(connection: Connection) -> bool:
    return inspect(connection).has_table(LEDGER_TABLE)


def unfinished(connection: Connection) -> list[LedgerRow]:
    """Rows still ``running``: runs that crashed or were killed before they finished."""
    if not exists(connection):
        return []
    columns = [ledger.c[name] for name in LedgerRow.__dataclass_fields__]
    rows = connection.execute(
        select(*columns).where(ledger.c.status == RUNNING).order_by(ledger.c.id)
    ).all()
    return [_row(row) for row in rows]


@dataclass
class Entry:
    """The ledger row of the current run, kept in memory too: a restore rewinds the table."""

    values: dict[str, Any]
    id: int | None = None


def start(connection: Connection, *, target: str, **values: Any) -> Entry:
    """Insert a ``running`` row (creating the table on first use)."""
    checksums = values.pop("revision_checksums", {})
    entry = Entry(
        {
            "target": target,
            "status": RUNNING,
            "started_at": datetime.now(UTC),
            "revision_checksums": json.dumps(checksums, sort_keys=True),
            **values,
        }
    )
    _write(connection, entry)
    return entry


def finish(
    connection: Connection,
    entry: Entry,
    *,
    status: str,
    timings: dict | None = None,
    **values: Any,
) -> None:
    """Close the run's row; re-insert it if a restore took it away."""
    finished_at = datetime.now(UTC)
    entry.values.update(
        status=status,
        finished_at=finished_at,
        duration_seconds=(finished_at - entry.values["started_at"]).total_seconds(),
        timings=json.dumps(timings or {}, sort_keys=True),
        **values,
    )
    _write(connection, entry)


def _write(connection: Connection, entry: Entry) -> None:
    with connection.begin():
        ensure_table(connection)
        if entry.id is not None:
            updated = connection.execute(
                update(ledger).where(ledger.c.id == entry.id).values(**entry.values)
            )
            if updated.rowcount == 1:
                return
        result = connection.execute(insert(ledger).values(**entry.values))
        entry.id = int(result.inserted_primary_key[0])


def present_columns(connection: Connection) -> list[Column]:
    """The columns the table has (one written by an older version lacks the newer ones)."""
    present = {column["name"] for column in inspect(connection).get_columns(LEDGER_TABLE)}
    return [column for column in ledger.c if column.name in present]


def ensure_table(connection: Connection) -> None:
    """Checked before every write: a restore may have taken the table away, or brought back one
    an older version wrote (it gets the newer columns)."""
    ledger.create(connection, checkfirst=True)
    _add_missing_columns(connection)


def _add_missing_columns(connection: Connection) -> None:
    present = {column.name for column in present_columns(connection)}
    for name in _ADDED_COLUMNS:
        if name not in present:
            connection.exec_driver_sql(f"ALTER TABLE {LEDGER_TABLE} ADD COLUMN {name} TEXT")


def _aware(value: datetime) -> datetime:
    # SQLite hands timestamps back without their zone; we always write UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _row(row: Any) -> LedgerRow:
    return LedgerRow(
        id=row.id,
        status=row.status,
        from_revision=row.from_revision,
        to_revision=row.to_revision,
        flow_run_id=row.flow_run_id,
        flow_run_name=row.flow_run_name,
        backup_path=row.backup_path,
        started_at=_aware(row.started_at),
        operation=row.operation,
    )


def rewrite(connection: Connection, entry: Entry) -> None:
    """Write the run's row as it stands (again, after a restore took it away)."""
    _write(connection, entry)
