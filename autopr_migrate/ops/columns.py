"""``safe.add_column``: a column added only where PostgreSQL adds it without a rewrite."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pglast import parse_sql
from pglast.visitors import Visitor
from sqlalchemy.schema import CreateColumn

from autopr_migrate.analysis.types import parse_type
from autopr_migrate.errors import MigrationError
from autopr_migrate.ops import catalog, sql
from autopr_migrate.ops.runner import BRIEF, Runner

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


def add_column(table: str, column: sa.Column, *, schema: str | None = None) -> None:
    """``ADD COLUMN`` where PostgreSQL (11+) adds it without touching a row: no default, or a
    default that is not volatile. Refused, with the safe way, where it would rewrite the table:
    a volatile default (``random()``, ``gen_random_uuid()``, ``clock_timestamp()``, a sequence),
    an identity or stored generated column, or ``NOT NULL`` without a default."""
    runner = Runner("add_column")
    if not runner.postgresql:
        op.add_column(table, column, schema=schema)
        return
    qualified = sql.qualified(table, schema)
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
                f"COMMENT ON COLUMN {qualified}.{sql.quote(column.name)} IS '{comment}'",
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
