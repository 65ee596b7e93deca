"""The migrating session: its lock and statement timeouts, lock-timeout detection, Alembic logs."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from autopr_migrate.backends.lock_sampler import MIGRATING_APPLICATION
from autopr_migrate.errors import DowngradeLockTimeout, LockTimeout
from autopr_migrate.history.runtime import SessionSettings
from autopr_migrate.masking import mask_secrets
from autopr_migrate.policy.parameters import LockPolicy

_LOCK_NOT_AVAILABLE = "55P03"


def is_lock_timeout(exc: BaseException) -> bool:
    """A statement gave up waiting for a lock (PostgreSQL lock_timeout, SQLite busy)."""
    inner = getattr(exc, "orig", None) or exc
    code = getattr(inner, "pgcode", None) or getattr(inner, "sqlstate", None)
    if code == _LOCK_NOT_AVAILABLE:
        return True  # any driver's, or reported from a project's own process
    return isinstance(exc, DBAPIError) and "database is locked" in str(exc.orig)


def retry_on_lock_timeout(task, task_run, state) -> bool:
    """Retry only lock timeouts (a plain function: Prefect ignores partials and callables)."""
    try:
        state.result()
    except (LockTimeout, DowngradeLockTimeout):
        return True
    except Exception:
        return False
    return False


def end_transaction(connection: Connection) -> None:
    if connection.in_transaction():
        connection.rollback()


def inherited_settings(policy: LockPolicy) -> SessionSettings:
    """The run's timeouts for every session a project's ``env.py`` opens while it runs.

    A project's ``env.py`` that opens a connection of its own (rather than using the one handed
    to it) still migrates under ``lock_timeout`` and ``statement_timeout``: each connection a
    SQLAlchemy engine hands out meanwhile is given them, whatever its driver, and libpq also
    reads them from ``PGOPTIONS`` when it connects.
    """
    lock_ms = int(policy.lock_timeout_seconds * 1000)
    statement_ms = int(policy.statement_timeout_seconds * 1000)
    options = f"-c lock_timeout={lock_ms} -c statement_timeout={statement_ms}"
    inherited = os.environ.get("PGOPTIONS", "").strip()
    return SessionSettings(
        environment={"PGOPTIONS": f"{inherited} {options}".strip()},
        statements={
            "postgresql": (
                f"SET lock_timeout = {lock_ms}",
                f"SET statement_timeout = {statement_ms}",
                f"SET application_name = '{MIGRATING_APPLICATION}'",
            ),
            "sqlite": (f"PRAGMA busy_timeout = {lock_ms}",),
        },
    )


@contextmanager
def timeouts(connection: Connection, policy: LockPolicy) -> Iterator[None]:
    """``lock_timeout`` and ``statement_timeout`` (SQLite: busy timeout) for the block."""
    lock_ms = int(policy.lock_timeout_seconds * 1000)
    end_transaction(connection)
    if connection.dialect.name == "postgresql":
        statement_ms = int(policy.statement_timeout_seconds * 1000)
        connection.exec_driver_sql(f"SET lock_timeout = {lock_ms}")
        connection.exec_driver_sql(f"SET statement_timeout = {statement_ms}")
        connection.exec_driver_sql(f"SET application_name = '{MIGRATING_APPLICATION}'")
        reset = ("RESET lock_timeout", "RESET statement_timeout", "RESET application_name")
    else:
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {lock_ms}")
        reset = ()
    connection.commit()
    try:
        yield
    finally:
        end_transaction(connection)
        if not connection.invalidated:
            for statement in reset:
                connection.exec_driver_sql(statement)
            connection.commit()


@contextmanager
def alembic_logs_to(logger: logging.LoggerAdapter) -> Iterator[None]:
    """Show Alembic's own lines ("Running upgrade a -> b") in the run's logs."""

    class Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logger.log(record.levelno, "%s", mask_secrets(record.getMessage()))

    handler = Forward(level=logging.INFO)
    source = logging.getLogger("alembic.runtime.migration")
    previous = source.level
    source.addHandler(handler)
    source.setLevel(logging.INFO)
    try:
        yield
    finally:
        source.removeHandler(handler)
        source.setLevel(previous)
