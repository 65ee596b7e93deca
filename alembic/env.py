"""Alembic environment for AutoPR Engine: one history for PostgreSQL and SQLite.

The database comes from ``DATABASE_URL`` (``autopr.config``), or from a connection handed in
through ``config.attributes["connection"]`` by the migration flows and the test bed, so the
connection that holds the migration lock is the one that migrates.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, pool
from sqlalchemy.exc import DBAPIError

from autopr.config import ConfigurationError, Settings
from autopr.database import Base, make_engine
from autopr_migrate.backends.engine import describe_connection_error
from autopr_migrate.backends.migration_lock import (
    hold_lock_file,
    release_advisory_lock,
    try_advisory_lock,
)
from autopr_migrate.model import TOOL_OWNED_TABLES  # the migration tool's own, never the models'
from autopr_migrate.ops.autogenerate import safe_operations

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    if type_ == "table":
        return name not in TOOL_OWNED_TABLES
    table = getattr(obj, "table", None)
    return table is None or table.name not in TOOL_OWNED_TABLES


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigurationError as exc:
        raise CommandError(str(exc)) from None


def _configure(**kwargs: Any) -> None:
    on_version_apply = config.attributes.get("on_version_apply")
    if on_version_apply is not None:
        kwargs["on_version_apply"] = on_version_apply
    # The migration tool says which version table its project keeps the revision in.
    kwargs["version_table"] = config.attributes.get("version_table") or "alembic_version"
    kwargs["version_table_schema"] = config.attributes.get("version_table_schema")
    context.configure(
        target_metadata=target_metadata,
        include_object=include_object,
        # autogenerate writes safe.create_index / safe.drop_index for tables that exist
        process_revision_directives=safe_operations,
        compare_type=True,
        compare_server_default=True,
        # SQLite's DDL is transactional too (the engine emits BEGIN itself): a failed revision
        # rolls back whole on both databases.
        transactional_ddl=True,
        # Each revision commits on its own: a revision with an autocommit block (CREATE INDEX
        # CONCURRENTLY) commits everything before it anyway, so make that the rule.
        transaction_per_migration=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """Render SQL without a database: for ``--sql`` and for plans."""
    dialect = config.attributes.get("dialect") or context.get_x_argument(as_dictionary=True).get(
        "dialect"
    )
    if dialect:
        _configure(dialect_name=dialect, literal_binds=True, dialect_opts={"paramstyle": "named"})
    else:
        _configure(
            url=_settings().database_url,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
        )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _sqlite_foreign_keys(connection, enabled=False)
    # SQLite cannot ALTER most things; batch mode recreates the table instead.
    _configure(connection=connection, render_as_batch=sqlite)
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if sqlite:
            _sqlite_foreign_keys(connection, enabled=True)
    if sqlite:
        _check_sqlite_foreign_keys(connection)


def _sqlite_foreign_keys(connection: Connection, *, enabled: bool) -> None:
    """Batch mode drops and recreates tables; with enforcement on, that would cascade deletes.

    The pragma is a no-op inside a transaction: end any open one, and send it on the raw
    connection so that no BEGIN precedes it.
    """
    if connection.in_transaction() and not connection.in_nested_transaction():
        connection.commit()
    raw = connection.connection.dbapi_connection
    raw.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")


def _check_sqlite_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    connection.commit()
    if broken:
        tables = sorted({row[0] for row in broken})
        raise CommandError(
            f"the migration left {len(broken)} rows with broken foreign keys in "
            f"{', '.join(tables)}; run PRAGMA foreign_key_check to see them"
        )


def run_migrations_online() -> None:
    handed_in = config.attributes.get("connection")
    if isinstance(handed_in, Engine):
        with handed_in.connect() as connection:
            _run_on(connection)
        return
    if handed_in is not None:
        _run_on(handed_in)
        return
    settings = _settings()
    engine = make_engine(settings.database_url, poolclass=pool.NullPool)
    try:
        connection = engine.connect()
    except DBAPIError as exc:
        raise CommandError(describe_connection_error(exc, settings.database_url)) from None
    try:
        with _migration_lock(connection):
            _run_on(connection)
    finally:
        connection.close()
        engine.dispose()


@contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    """Plain ``alembic`` takes the migration flows' lock too, and never waits for it."""
    busy = CommandError(
        "another migration holds this database's migration lock (a migrate flow or another "
        "alembic run); wait for it to finish, then run this command again"
    )
    if connection.dialect.name == "sqlite":
        database = connection.engine.url.database
        if not database or database == ":memory:":
            yield
            return
        with ExitStack() as stack:
            try:
                stack.enter_context(hold_lock_file(database))
            except TimeoutError:
                raise busy from None
            yield
        return
    if connection.dialect.name != "postgresql":
        yield
        return
    if not try_advisory_lock(connection):
        raise busy
    try:
        yield
    finally:
        release_advisory_lock(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
