"""Connections to a target: short-lived observers and the one connection that migrates."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from autopr_migrate.backends.engine import describe_connection_error, make_engine
from autopr_migrate.errors import DatabaseUnreachable
from autopr_migrate.targets.targets import Target


def target_engine(target: Target, *, connect_timeout: float = 10) -> Engine:
    return make_engine(target.url, connect_timeout=connect_timeout, poolclass=NullPool)


@contextmanager
def connect(target: Target, *, connect_timeout: float = 10) -> Iterator[Connection]:
    """A fresh connection to ``target``; an unreachable database raises ``DatabaseUnreachable``."""
    engine = target_engine(target, connect_timeout=connect_timeout)
    try:
        try:
            connection = engine.connect()
        except DBAPIError as exc:
            raise DatabaseUnreachable(unreachable_message(exc, target)) from None
        with connection:
            yield connection
    finally:
        engine.dispose()


def unreachable_message(exc: DBAPIError, target: Target) -> str:
    return describe_connection_error(exc, target.url, source=f"target {target.name!r}")


def row_counts(connection: Connection) -> dict[str, int]:
    """Every table's row count, in name order."""
    counts = {}
    for table in sorted(inspect(connection).get_table_names()):
        quoted = connection.dialect.identifier_preparer.quote(table)
        counts[table] = int(connection.scalar(text(f"SELECT count(*) FROM {quoted}")))
    return counts
