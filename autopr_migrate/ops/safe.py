"""Safe schema operations for Alembic revisions: ``from autopr_migrate.ops import safe``.

Each operation commits what the revision did before it, then runs its sub-steps one at a time,
each in its own transaction with its lock level's timeouts (``runner``), retried on a lock
timeout, and each skipped when the catalog shows it done: re-running the revision after a crash
at any sub-step completes the operation. Call them outside ``op.batch_alter_table``. Offline
they render their statements; on SQLite they do the plain operation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pglast import parse_sql
from pglast.visitors import Visitor
from sqlalchemy.schema import CreateColumn

from autopr_migrate.analysis.types import parse_type
from autopr_migrate.errors import MigrationError
from autopr_migrate.ops import catalog
from autopr_migrate.ops.backfill import backfill
from autopr_migrate.ops.runner import BRIEF, LONG, Runner, configure, is_lock_timeout

__all__ = [
    "UnsafeOperation",
    "add_check",
    "add_column",
    "add_foreign_key",
    "add_unique",
    "backfill",
    "configure",
    "create_index",
    "drop_index",
    "set_not_null",
]
_MAX_NAME = 63
# Volatile functions a default commonly calls, for offline rendering (online, pg_proc says).
VOLATILE = frozenset(
    {
        "random",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "clock_timestamp",
        "timeofday",
        "nextval",
        "setseed",
        "txid_current",
        "pg_current_xact_id",
    }
)


class UnsafeOperation(MigrationError):
    """The operation would lock or rewrite the table; the message says what to do instead."""


def create_index(
    name: str,
    table: str,
    columns: Sequence[str],
    *,
    unique: bool = False,
    where: str | None = None,
    using: str | None = None,
    schema: str | None = None,
) -> None:
    """``CREATE INDEX CONCURRENTLY``; an INVALID leftover of an earlier attempt is dropped and
    built again. ``columns``: column names, or expressions such as ``lower(email)``."""
    runner = Runner("create_index")
    if not runner.postgresql:
        op.create_index(
            name,
            table,
            [_column_or_expression(c) for c in columns],
            unique=unique,
            schema=schema,
            sqlite_where=sa.text(where) if where else None,
        )
        return
    with runner.outside_transaction():
        _build_index(
            runner, name, table, columns, unique=unique, where=where, using=using, schema=schema
        )


def drop_index(name: str, *, schema: str | None = None) -> None:
    """``DROP INDEX CONCURRENTLY IF EXISTS``."""
    runner = Runner("drop_index")
    if not runner.postgresql:
        op.execute(f"DROP INDEX IF EXISTS {_name(name, schema)}")
        return
    with runner.outside_transaction():
        runner.run("drop", f"DROP INDEX CONCURRENTLY IF EXISTS {_name(name, schema)}", kind=LONG)


def add_foreign_key(
    name: str,
    source_table: str,
    referent_table: str,
    local_columns: Sequence[str],
    remote_columns: Sequence[str],
    *,
    ondelete: str | None = None,
    onupdate: str | None = None,
    source_schema: str | None = None,
    referent_schema: str | None = None,
) -> None:
    """``ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID``, then ``VALIDATE`` in its own
    transaction (a scan that blocks neither reads nor writes)."""
    runner = Runner("add_foreign_key")
    if not runner.postgresql:
        with op.batch_alter_table(source_table, schema=source_schema) as batch:
            batch.create_foreign_key(
                name,
                referent_table,
                list(local_columns),
                list(remote_columns),
                ondelete=ondelete,
                onupdate=onupdate,
            )
        return
    actions = "".join(
        f" ON {event} {_action(value)}"
        for event, value in (("DELETE", ondelete), ("UPDATE", onupdate))
        if value
    )
    definition = (
        f"FOREIGN KEY ({_columns(local_columns)}) REFERENCES "
        f"{_name(referent_table, referent_schema)} ({_columns(remote_columns)}){actions}"
    )
    with runner.outside_transaction():
        _add_validated(runner, name, _name(source_table, source_schema), definition)


def add_check(name: str, table: str, condition: str, *, schema: str | None = None) -> None:
    """``ADD CONSTRAINT ... CHECK (...) NOT VALID``, then ``VALIDATE`` in its own transaction."""
    runner = Runner("add_check")
    if not runner.postgresql:
        with op.batch_alter_table(table, schema=schema) as batch:
            batch.create_check_constraint(name, sa.text(condition))
        return
    with runner.outside_transaction():
        _add_validated(runner, name, _name(table, schema), f"CHECK ({condition})")


def set_not_null(table: str, column: str, *, schema: str | None = None) -> None:
    """``SET NOT NULL`` without a scan under ``ACCESS EXCLUSIVE``: a ``CHECK (column IS NOT
    NULL) NOT VALID``, validated in its own transaction, lets PostgreSQL (12+) skip the scan;
    the check is dropped afterwards."""
    runner = Runner("set_not_null")
    if not runner.postgresql:
        with op.batch_alter_table(table, schema=schema) as batch:
            batch.alter_column(column, nullable=False)
        return
    qualified = _name(table, schema)
    # Not PostgreSQL 18's name for a NOT NULL constraint ({table}_{column}_not_null): ours only.
    check = _derived_name(f"{table}_{column}", "nn_check")
    with runner.outside_transaction():
        done = not runner.offline and catalog.column_not_null(runner, qualified, column)
        if not done:
            _add_validated(runner, check, qualified, f"CHECK ({_quote(column)} IS NOT NULL)")
            runner.run(
                "set not null",
                f"ALTER TABLE {qualified} ALTER COLUMN {_quote(column)} SET NOT NULL",
                kind=BRIEF,
            )
        runner.run(
            "drop check",
            f"ALTER TABLE {qualified} DROP CONSTRAINT IF EXISTS {_quote(check)}",
            kind=BRIEF,
        )


def add_unique(name: str, table: str, columns: Sequence[str], *, schema: str | None = None) -> None:
    """A unique constraint from a unique index built concurrently (``USING INDEX``): the table
    is locked only for the moment the index becomes the constraint."""
    runner = Runner("add_unique")
    if not runner.postgresql:
        with op.batch_alter_table(table, schema=schema) as batch:
            batch.create_unique_constraint(name, list(columns))
        return
    qualified = _name(table, schema)
    with runner.outside_transaction():
        if not runner.offline and catalog.constraint_validated(runner, qualified, name):
            return
        _build_index(runner, name, table, columns, unique=True, schema=schema)
        runner.run(
            "attach",
            f"ALTER TABLE {qualified} ADD CONSTRAINT {_quote(name)} UNIQUE USING INDEX "
            f"{_quote(name)}",
            kind=BRIEF,
        )


def add_column(table: str, column: sa.Column, *, schema: str | None = None) -> None:
    """``ADD COLUMN`` where PostgreSQL (11+) adds it without touching a row: no default, or a
    default that is not volatile. Refused, with the safe way, where it would rewrite the table:
    a volatile default (``random()``, ``gen_random_uuid()``, ``clock_timestamp()``, a sequence),
    an identity or stored generated column, or ``NOT NULL`` without a default."""
    runner = Runner("add_column")
    if not runner.postgresql:
        op.add_column(table, column, schema=schema)
        return
    qualified = _name(table, schema)
    dialect = op.get_context().dialect
    _refuse_rewrites(runner, table, column)
    definition = str(CreateColumn(column).compile(dialect=dialect))
    with runner.outside_transaction():
        existing = None if runner.offline else catalog.column_type(runner, qualified, column.name)
        if existing is not None:
            wanted = column.type.compile(dialect=dialect)
            if parse_type(existing) != parse_type(wanted):
                raise UnsafeOperation(
                    f"{table}.{column.name} exists already as {existing[:40]}, not {wanted[:40]}: "
                    f"drop it or give the revision the column as it is"
                )
            return  # added by an earlier attempt
        runner.run("add", f"ALTER TABLE {qualified} ADD COLUMN {definition}", kind=BRIEF)
        if column.comment:
            comment = column.comment.replace("'", "''")
            runner.run(
                "comment",
                f"COMMENT ON COLUMN {qualified}.{_quote(column.name)} IS '{comment}'",
                kind=BRIEF,
            )


def _refuse_rewrites(runner: Runner, table: str, column: sa.Column) -> None:
    name = f"{table}.{column.name}"
    if column.primary_key or column.foreign_keys or column.constraints:
        raise UnsafeOperation(
            f"adding {name} with a key or constraint of its own builds or checks it under "
            f"ACCESS EXCLUSIVE: add the column plain, then safe.add_foreign_key, "
            f"safe.add_check or safe.add_unique"
        )
    if column.identity is not None or (
        column.computed is not None and column.computed.persisted is not False
    ):
        raise UnsafeOperation(
            f"adding {name} as an identity or generated column rewrites the table under ACCESS "
            f"EXCLUSIVE: add it as a plain column, fill it with safe.backfill, then attach the "
            f"sequence or expression"
        )
    default = column.server_default
    if default is None:
        if not column.nullable:
            raise UnsafeOperation(
                f"adding {name} NOT NULL without a default fails on a table with rows: add it "
                f"nullable, fill it with safe.backfill, then safe.set_not_null"
            )
        return
    expression = str(
        default.arg.compile(dialect=op.get_context().dialect)
        if isinstance(default.arg, sa.sql.ClauseElement)
        else default.arg
    )
    functions = _functions_in(expression)
    volatile = functions is None or bool(VOLATILE & set(functions))
    if volatile or (not runner.offline and catalog.any_volatile(runner, functions or [])):
        raise UnsafeOperation(
            f"the default of {name} ({expression[:60]}) is volatile, so every row is written "
            f"under ACCESS EXCLUSIVE: add the column without it, fill it with safe.backfill, "
            f"then set the default for new rows"
        )


def _functions_in(expression: str) -> list[str] | None:
    """The function names a default expression calls; None when it does not parse."""

    class Calls(Visitor):
        def __init__(self) -> None:
            self.names: list[str] = []

        def visit_FuncCall(self, _ancestors, node) -> None:
            self.names.append(node.funcname[-1].sval)

        def visit_SQLValueFunction(self, _ancestors, node) -> None:
            pass  # CURRENT_TIMESTAMP and the like: stable

    try:
        tree = parse_sql(f"SELECT {expression}")
    except Exception:
        return None
    calls = Calls()
    calls(tree)
    if "nextval" in calls.names:
        return ["nextval"]
    return calls.names


def _build_index(
    runner: Runner,
    name: str,
    table: str,
    columns: Sequence[str],
    *,
    unique: bool,
    where: str | None = None,
    using: str | None = None,
    schema: str | None = None,
) -> None:
    """Build concurrently; a lock timeout during the build leaves an INVALID index, so the unit
    retried is the whole of it: read the catalog, drop a leftover, build. A build that fails
    otherwise (duplicates) drops what it left: an INVALID unique index still refuses writes."""
    index = _name(name, schema)
    build = (
        f"CREATE {'UNIQUE ' if unique else ''}INDEX CONCURRENTLY {_quote(name)} ON "
        f"{_name(table, schema)}{f' USING {using}' if using else ''} "
        f"({', '.join(_column_sql(c) for c in columns)})" + (f" WHERE {where}" if where else "")
    )
    if runner.offline:
        runner.run("build", build, kind=LONG)
        return
    drop = f"DROP INDEX CONCURRENTLY IF EXISTS {index}"

    def unit() -> None:
        valid = catalog.index_valid(runner, index)
        if valid:
            return
        if valid is False:
            runner.execute(drop, kind=LONG)  # the leftover of an earlier attempt
        try:
            runner.execute(build, kind=LONG)
        except Exception:
            if catalog.index_valid(runner, index) is False:
                runner.execute(drop, kind=LONG)
            raise

    runner.retried("build", unit)


def _add_validated(runner: Runner, name: str, qualified: str, definition: str) -> None:
    validated = None if runner.offline else catalog.constraint_validated(runner, qualified, name)
    if validated is None:
        runner.run(
            "add not valid",
            f"ALTER TABLE {qualified} ADD CONSTRAINT {_quote(name)} {definition} NOT VALID",
            kind=BRIEF,
        )
    if validated:
        return
    validate = f"ALTER TABLE {qualified} VALIDATE CONSTRAINT {_quote(name)}"
    if runner.offline:
        runner.run("validate", validate, kind=LONG)
        return

    def unit() -> None:
        try:
            runner.execute(validate, kind=LONG)
        except Exception as exc:
            if not is_lock_timeout(exc):  # rows break it: do not leave it checking new writes
                runner.execute(
                    f"ALTER TABLE {qualified} DROP CONSTRAINT IF EXISTS {_quote(name)}",
                    kind=BRIEF,
                )
            raise

    runner.retried("validate", unit)


def _quote(name: str) -> str:
    return op.get_context().dialect.identifier_preparer.quote(name)


def _name(name: str, schema: str | None) -> str:
    return f"{_quote(schema)}.{_quote(name)}" if schema else _quote(name)


def _columns(columns: Sequence[str]) -> str:
    return ", ".join(_quote(column) for column in columns)


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_ORDERED = re.compile(r"^(?P<base>.+?)(?P<order>(\s+(asc|desc))?(\s+nulls\s+(first|last))?)$", re.I)


def _column_sql(column: str) -> str:
    """A column name (quoted where it must be), or an expression (in parentheses), either with
    its ASC/DESC and NULLS FIRST/LAST."""
    match = _ORDERED.match(column.strip())
    base, order = (match["base"], match["order"]) if match else (column, "")
    if _IDENTIFIER.match(base):
        return f"{_quote(base)}{order}"
    if base.startswith("(") and base.endswith(")"):
        return f"{base}{order}"
    return f"({base}){order}"


def _column_or_expression(column: str) -> str | sa.TextClause:
    return column if _IDENTIFIER.match(column) else sa.text(column)


def _action(value: str) -> str:
    action = " ".join(value.upper().split())
    if action not in {"CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION"}:
        raise UnsafeOperation(f"not a referential action: {value[:40]!r}")
    return action


def _derived_name(base: str, suffix: str) -> str:
    name = f"{base}_{suffix}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{base[: _MAX_NAME - len(suffix) - 10]}_{digest}_{suffix}"
