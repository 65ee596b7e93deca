"""The one place that creates engines: SQLite pragmas, PostgreSQL timeouts, read-only mode."""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError

from autopr_migrate.masking import mask_secrets
from autopr_migrate.targets.urls import DATABASE_URL_ENV, render_url

DEFAULT_CONNECT_TIMEOUT = 10
SQLITE_BUSY_TIMEOUT_MS = 5000


def make_engine(
    url: URL,
    *,
    read_only: bool = False,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    statement_timeout: float | None = None,
    **kwargs: Any,
) -> Engine:
    """Create an engine for ``url``.

    Args:
        read_only: open SQLite read-only (never creating the file) and make PostgreSQL
            sessions read-only, for observers such as the health probe.
        connect_timeout: seconds to wait for the server to answer a connection.
        statement_timeout: seconds after which PostgreSQL cancels a statement (also bounds
            lock waits); on SQLite, how long to wait for a lock.
    """
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, read_only=read_only, busy_timeout=statement_timeout, **kwargs)
    options = []
    if read_only:
        options.append("-c default_transaction_read_only=on")
    if statement_timeout is not None:
        options.append(f"-c statement_timeout={int(statement_timeout * 1000)}")
    connect_args: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}
    if options:
        connect_args["options"] = " ".join(options)
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True, **kwargs)


def _sqlite_engine(
    url: URL, *, read_only: bool, busy_timeout: float | None, **kwargs: Any
) -> Engine:
    connect_args: dict[str, Any] = {}
    if read_only and url.database and url.database != ":memory:":
        # mode=ro fails on a missing file instead of creating an empty database.
        url = url.set(database=f"file:{url.database}?mode=ro", query={"uri": "true"})
        connect_args["uri"] = True
    if busy_timeout is not None:
        connect_args["timeout"] = busy_timeout
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    busy_ms = int(busy_timeout * 1000) if busy_timeout is not None else SQLITE_BUSY_TIMEOUT_MS

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling never wraps DDL; take over and emit BEGIN
        # ourselves, so a failed migration (DDL included) rolls back as on PostgreSQL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


def describe_connection_error(exc: DBAPIError, url: URL, *, source: str = DATABASE_URL_ENV) -> str:
    """One line that says which database did not answer, why, and what to check."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    return (
        f"cannot connect to the database in {source} ({render_url(url)}): "
        f"{mask_secrets(reason)}; check that the server is running and that the host, port, "
        f"database name, user and password in {source} are right"
    )
