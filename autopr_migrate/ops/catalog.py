"""What a safe operation reads before each sub-step, so a re-run after a crash does only what is
left: an index and whether it is valid, a constraint and whether it is validated, a column and
whether it is nullable (PostgreSQL)."""

from __future__ import annotations

from autopr_migrate.ops.runner import Runner

_INDEX = (
    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE c.oid = to_regclass(:name)"
)
_CONSTRAINT = (
    "SELECT convalidated FROM pg_constraint "
    "WHERE conrelid = to_regclass(:table) AND conname = :name"
)
_COLUMN = (
    "SELECT attnotnull, format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = to_regclass(:table) AND attname = :column AND attnum > 0 "
    "AND NOT attisdropped"
)
_VOLATILE = (
    "SELECT coalesce(bool_or(provolatile = 'v'), false) FROM pg_proc "
    "WHERE proname = ANY(CAST(:names AS text[]))"
)


def index_valid(runner: Runner, qualified: str) -> bool | None:
    """True (valid), False (an INVALID leftover of a failed concurrent build), None (none)."""
    rows = runner.read(_INDEX, name=qualified)
    return rows[0][0] if rows else None


def constraint_validated(runner: Runner, table: str, name: str) -> bool | None:
    """True (validated), False (added NOT VALID, not validated yet), None (none)."""
    rows = runner.read(_CONSTRAINT, table=table, name=name)
    return rows[0][0] if rows else None


def column_not_null(runner: Runner, table: str, column: str) -> bool | None:
    """True (NOT NULL), False (nullable), None (no such column)."""
    rows = runner.read(_COLUMN, table=table, column=column)
    return rows[0][0] if rows else None


def column_type(runner: Runner, table: str, column: str) -> str | None:
    """The column's type as ``format_type`` prints it; None when there is no such column."""
    rows = runner.read(_COLUMN, table=table, column=column)
    return rows[0][1] if rows else None


def any_volatile(runner: Runner, functions: list[str]) -> bool:
    """Whether any function of these names is volatile (any overload: the cautious answer)."""
    if not functions:
        return False
    return bool(runner.read(_VOLATILE, names=functions)[0][0])
