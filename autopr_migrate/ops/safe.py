"""Safe schema operations for Alembic revisions: ``from autopr_migrate.ops import safe``.

Each operation commits what the revision did before it, then runs its sub-steps one at a time,
each in its own transaction with its lock level's timeouts (``runner``), retried on a lock
timeout, and each skipped when the catalog shows it done: re-running the revision after a crash
at any sub-step completes the operation. Call them outside ``op.batch_alter_table``. Offline
they render their statements; on SQLite they do the plain operation (in batch mode, where
``copy_from`` is the table as it is at this revision, as Alembic's own batch mode takes it for
rendering SQLite offline).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from autopr_migrate.ops import catalog, sql
from autopr_migrate.ops.backfill import backfill
from autopr_migrate.ops.columns import UnsafeOperation, add_column
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
            [sql.column_or_expression(c) for c in columns],
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
        op.execute(f"DROP INDEX IF EXISTS {sql.qualified(name, schema)}")
        return
    with runner.outside_transaction():
        runner.run(
            "drop", f"DROP INDEX CONCURRENTLY IF EXISTS {sql.qualified(name, schema)}", kind=LONG
        )


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
    copy_from: sa.Table | None = None,
) -> None:
    """``ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID``, then ``VALIDATE`` in its own
    transaction (a scan that blocks neither reads nor writes)."""
    runner = Runner("add_foreign_key")
    if not runner.postgresql:
        with op.batch_alter_table(source_table, schema=source_schema, copy_from=copy_from) as batch:
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
        f"FOREIGN KEY ({sql.column_list(local_columns)}) REFERENCES "
        f"{sql.qualified(referent_table, referent_schema)} "
        f"({sql.column_list(remote_columns)}){actions}"
    )
    with runner.outside_transaction():
        _add_validated(runner, name, sql.qualified(source_table, source_schema), definition)


def add_check(
    name: str,
    table: str,
    condition: str,
    *,
    schema: str | None = None,
    copy_from: sa.Table | None = None,
) -> None:
    """``ADD CONSTRAINT ... CHECK (...) NOT VALID``, then ``VALIDATE`` in its own transaction."""
    runner = Runner("add_check")
    if not runner.postgresql:
        with op.batch_alter_table(table, schema=schema, copy_from=copy_from) as batch:
            batch.create_check_constraint(name, sa.text(condition))
        return
    with runner.outside_transaction():
        _add_validated(runner, name, sql.qualified(table, schema), f"CHECK ({condition})")


def set_not_null(
    table: str, column: str, *, schema: str | None = None, copy_from: sa.Table | None = None
) -> None:
    """``SET NOT NULL`` without a scan under ``ACCESS EXCLUSIVE``: a ``CHECK (column IS NOT
    NULL) NOT VALID``, validated in its own transaction, lets PostgreSQL (12+) skip the scan;
    the check is dropped afterwards."""
    runner = Runner("set_not_null")
    if not runner.postgresql:
        with op.batch_alter_table(table, schema=schema, copy_from=copy_from) as batch:
            batch.alter_column(column, nullable=False)
        return
    qualified = sql.qualified(table, schema)
    # Not PostgreSQL 18's name for a NOT NULL constraint ({table}_{column}_not_null): ours only.
    check = sql.derived_name(f"{table}_{column}", "nn_check")
    with runner.outside_transaction():
        done = not runner.offline and catalog.column_not_null(runner, qualified, column)
        if not done:
            _add_validated(runner, check, qualified, f"CHECK ({sql.quote(column)} IS NOT NULL)")
            runner.run(
                "set not null",
                f"ALTER TABLE {qualified} ALTER COLUMN {sql.quote(column)} SET NOT NULL",
                kind=BRIEF,
            )
        runner.run(
            "drop check",
            f"ALTER TABLE {qualified} DROP CONSTRAINT IF EXISTS {sql.quote(check)}",
            kind=BRIEF,
        )


def add_unique(
    name: str,
    table: str,
    columns: Sequence[str],
    *,
    schema: str | None = None,
    copy_from: sa.Table | None = None,
) -> None:
    """A unique constraint from a unique index built concurrently (``USING INDEX``): the table
    is locked only for the moment the index becomes the constraint."""
    runner = Runner("add_unique")
    if not runner.postgresql:
        with op.batch_alter_table(table, schema=schema, copy_from=copy_from) as batch:
            batch.create_unique_constraint(name, list(columns))
        return
    qualified = sql.qualified(table, schema)
    with runner.outside_transaction():
        if not runner.offline and catalog.constraint_validated(runner, qualified, name):
            return
        _build_index(runner, name, table, columns, unique=True, schema=schema)
        runner.run(
            "attach",
            f"ALTER TABLE {qualified} ADD CONSTRAINT {sql.quote(name)} UNIQUE USING INDEX "
            f"{sql.quote(name)}",
            kind=BRIEF,
        )


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
    index = sql.qualified(name, schema)
    build = (
        f"CREATE {'UNIQUE ' if unique else ''}INDEX CONCURRENTLY {sql.quote(name)} ON "
        f"{sql.qualified(table, schema)}{f' USING {using}' if using else ''} "
        f"({', '.join(sql.column_sql(c) for c in columns)})" + (f" WHERE {where}" if where else "")
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
            f"ALTER TABLE {qualified} ADD CONSTRAINT {sql.quote(name)} {definition} NOT VALID",
            kind=BRIEF,
        )
    if validated:
        return
    validate = f"ALTER TABLE {qualified} VALIDATE CONSTRAINT {sql.quote(name)}"
    if runner.offline:
        runner.run("validate", validate, kind=LONG)
        return

    def unit() -> None:
        try:
            runner.execute(validate, kind=LONG)
        except Exception as exc:
            if not is_lock_timeout(exc):  # rows break it: do not leave it checking new writes
                runner.execute(
                    f"ALTER TABLE {qualified} DROP CONSTRAINT IF EXISTS {sql.quote(name)}",
                    kind=BRIEF,
                )
            raise

    runner.retried("validate", unit)


def _action(value: str) -> str:
    action = " ".join(value.upper().split())
    if action not in {"CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION"}:
        raise UnsafeOperation(f"not a referential action: {value[:40]!r}")
    return action
