"""What the live database says about the tables a migration touches: sizes and column types."""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

from autopr_migrate.analysis.model import TableStats
from autopr_migrate.analysis.types import UTC_NAMES
from autopr_migrate.analysis.walk import ColumnFact

_SIZES = text(
    "SELECT c.relname AS name, c.reltuples::bigint AS rows, pg_total_relation_size(c.oid) AS size "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY (current_schemas(false)) "
    "AND c.relname = ANY (:names) "
    "UNION ALL "
    "SELECT i.relname, t.reltuples::bigint, pg_total_relation_size(t.oid) "
    "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
    "JOIN pg_namespace n ON n.oid = i.relnamespace "
    "WHERE n.nspname = ANY (current_schemas(false)) AND i.relname = ANY (:names)"
)
_COLUMNS = text(
    "SELECT c.relname AS table_name, a.attname AS column_name, "
    "format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null FROM pg_attribute a "
    "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = ANY (current_schemas(false)) AND c.relname = ANY (:names) "
    "AND a.attnum > 0 AND NOT a.attisdropped"
)
# Validated CHECK constraints, to find the ones of the shape CHECK (column IS NOT NULL).
_CHECKS = text(
    "SELECT c.relname AS table_name, pg_get_constraintdef(k.oid) AS definition "
    "FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE k.contype = 'c' AND k.convalidated AND n.nspname = ANY (current_schemas(false)) "
    "AND c.relname = ANY (:names)"
)
_NOT_NULL_CHECK = re.compile(r'^CHECK \(\(?"?(?P<column>[^"()\s]+)"? IS NOT NULL\)?\)$')


def table_stats(connection: Connection, names: set[str]) -> dict[str, TableStats]:
    """Estimated rows (``pg_class.reltuples``; None if never analyzed) and total size.

    An index name maps to the size of its table. SQLite has no estimates: its rows are counted.
    """
    if connection.dialect.name == "sqlite":
        return _sqlite_stats(connection, names)
    rows = connection.execute(_SIZES, {"names": sorted(names)}).all()
    connection.rollback()
    return {r.name: TableStats(None if r.rows < 0 else int(r.rows), int(r.size)) for r in rows}


def _sqlite_stats(connection: Connection, names: set[str]) -> dict[str, TableStats]:
    tables = {
        row.name: row.tbl_name
        for row in connection.execute(
            text("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')")
        )
    }
    stats = {}
    for name in sorted(names & tables.keys()):
        quoted = connection.dialect.identifier_preparer.quote(tables[name])
        count = int(connection.scalar(text(f"SELECT count(*) FROM {quoted}")))
        stats[name] = TableStats(count, 0)
    connection.rollback()
    return stats


def column_facts(connection: Connection, names: set[str]) -> dict[tuple[str, str], ColumnFact]:
    """Each column's type and nullability, and whether a validated CHECK proves it not null."""
    if connection.dialect.name == "sqlite":
        return {}
    rows = connection.execute(_COLUMNS, {"names": sorted(names)}).all()
    proven = set()
    for row in connection.execute(_CHECKS, {"names": sorted(names)}):
        match = _NOT_NULL_CHECK.match(row.definition)
        if match:
            proven.add((row.table_name, match["column"]))
    connection.rollback()
    return {
        (r.table_name, r.column_name): ColumnFact(
            r.type, bool(r.not_null), (r.table_name, r.column_name) in proven
        )
        for r in rows
    }


def session_is_utc(connection: Connection) -> bool:
    """Whether a new session on this database runs in UTC (``SHOW TimeZone``)."""
    if connection.dialect.name != "postgresql":
        return False
    zone = str(connection.scalar(text("SHOW TimeZone")))
    connection.rollback()
    return zone.strip().lower() in UTC_NAMES
