"""Safe schema operations for Alembic revisions: ``from autopr_migrate.ops import safe``.

Each operation commits what the revision did before it, then runs its sub-steps one at a time,
each in its own transaction with its lock level's timeouts (``runner``), retried on a lock
timeout, and each skipped when the catalog shows it done: re-running the revision after a crash
at any sub-step completes the operation. Call them outside ``op.batch_alter_table``. Offline
they render their statements; on SQLite they do the plain operation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pglast import parse_sql
from pglast.visitors import Visitor
from sqlalchemy.schema import CreateColumn

from autopr_migrate.errors import MigrationError
from autopr_migrate.ops import catalog
from autopr_migrate.ops.backfill import backfill
from autopr_migrate.ops.runner import Runner, configure

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
    if not runner.offline and not runner.postgresql:
        op.create_index(
            name,
            table,
            [_column_or_expression(c) for c in columns],
            unique=unique,
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
    if not runner.offline and not runner.postgresql:
        op.execute(f"DROP INDEX IF EXISTS {_quote(name)}")
        return
    with runner.outside_transaction():
        runner.run("drop", f"DROP INDEX CONCURRENTLY IF EXISTS {_name(name, schema)}", brief=False)


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
    if not runner.offline and not runner.postgresql:
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
    if not runner.offline and not runner.postgresql:
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
    if not runner.offline and not runner.postgresql:
        with op.batch_alter_table(table, schema=schema) as batch:
            batch.alter_column(column, nullable=False)
        return
    qualified = _name(table, schema)
    check = _derived_name(f"{table}_{column}", "not_null")
    with runner.outside_transaction():
        done = not runner.offline and catalog.column_not_null(runner, qualified, column)
        if not done:
            _add_validated(runner, check, qualified, f"CHECK ({_quote(column)} IS NOT NULL)")
            runner.run(
                "set not null",
                f"ALTER TABLE {qualified} ALTER COLUMN {_quote(column)} SET NOT NULL",
                brief=True,
            )
        runner.run(
            "drop check",
            f"ALTER TABLE {qualified} DROP CONSTRAINT IF EXISTS {_quote(check)}",
            brief=True,
        )


def add_unique(name: str, table: str, columns: Sequence[str], *, schema: str | None = None) -> None:
    """A unique constraint from a unique index built concurrently (``USING INDEX``): the table
    is locked only for the moment the index becomes the constraint."""
    runner = Runner("add_unique")
    if not runner.offline and not runner.postgresql:
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
            brief=True,
        )


def add_column(table: str, column: sa.Column, *, schema: str | None = None) -> None:
    """``ADD COLUMN`` where PostgreSQL (11+) adds it without touching a row: no default, or a
    default that is not volatile. Refused, with the safe way, where it would rewrite the table:
    a volatile default (``random()``, ``gen_random_uuid()``, ``clock_timestamp()``, a sequence),
    an identity or stored generated column, or ``NOT NULL`` without a default."""
    runner = Runner("add_column")
    if not runner.offline and not runner.postgresql:
        op.add_column(table, column, schema=schema)
        return
    qualified = _name(table, schema)
    definition = str(CreateColumn(column).compile(dialect=op.get_context().dialect))
    _refuse_rewrites(runner, table, column)
    with runner.outside_transaction():
        if (
            not runner.offline
            and catalog.column_not_null(runner, qualified, column.name) is not None
        ):
            return
        runner.run(
            "add", f"ALTER TABLE {qualified} ADD COLUMN IF NOT EXISTS {definition}", brief=True
        )


def _refuse_rewrites(runner: Runner, table: str, column: sa.Column) -> None:
    name = f"{table}.{column.name}"
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
    if functions is None or (not runner.offline and catalog.any_volatile(runner, functions)):
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
    index = _name(name, schema)
    if not runner.offline:
        valid = catalog.index_valid(runner, index)
        if valid:
            return
        if valid is False:
            runner.run(
                "drop invalid leftover", f"DROP INDEX CONCURRENTLY IF EXISTS {index}", brief=False
            )
    runner.run(
        "build",
        f"CREATE {'UNIQUE ' if unique else ''}INDEX CONCURRENTLY {_quote(name)} ON "
        f"{_name(table, schema)}{f' USING {using}' if using else ''} "
        f"({', '.join(_column_sql(c) for c in columns)})" + (f" WHERE {where}" if where else ""),
        brief=False,
    )


def _add_validated(runner: Runner, name: str, qualified: str, definition: str) -> None:
    validated = None if runner.offline else catalog.constraint_validated(runner, qualified, name)
    if validated is None:
        runner.run(
            "add not valid",
            f"ALTER TABLE {qualified} ADD CONSTRAINT {_quote(name)} {definition} NOT VALID",
            brief=True,
        )
    if not validated:
        runner.run(
            "validate", f"ALTER TABLE {qualified} VALIDATE CONSTRAINT {_quote(name)}", brief=False
        )


def _quote(name: str) -> str:
    return op.get_context().dialect.identifier_preparer.quote(name)


def _name(name: str, schema: str | None) -> str:
    return f"{_quote(schema)}.{_quote(name)}" if schema else _quote(name)


def _columns(columns: Sequence[str]) -> str:
    return ", ".join(_quote(column) for column in columns)


def _column_sql(column: str) -> str:
    return _quote(column) if column.replace("_", "").isalnum() else column


def _column_or_expression(column: str) -> str | sa.TextClause:
    return column if column.replace("_", "").isalnum() else sa.text(column)


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
