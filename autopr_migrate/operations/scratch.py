"""Throwaway copies of a target made from one of its backups: rehearsals and restore tests.

PostgreSQL: a new database on the same server, named ``<prefix><target>_<random>``, restored
with ``pg_restore`` and always dropped (stale copies a killed run left behind are dropped
first). SQLite: a copy of the backup file in a directory the caller owns.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Connection, text

from autopr_migrate.backends import pgtools
from autopr_migrate.backends.connections import connect, target_engine
from autopr_migrate.store.backups import Backup
from autopr_migrate.targets.targets import Target


@contextmanager
def scratch_copy(target: Target, dump: Backup, directory: Path, *, prefix: str) -> Iterator[Target]:
    """The target, pointed at a fresh copy of ``dump``."""
    if target.dialect != "postgresql":
        copy = directory / f"{prefix}copy.sqlite3"
        source, destination = sqlite3.connect(dump.path), sqlite3.connect(copy)
        source.backup(destination)
        source.close()
        destination.close()
        yield replace(target, url=target.url.set(database=str(copy)))
        return
    name = f"{prefix}{target.name.replace('-', '_')}_{uuid.uuid4().hex[:10]}"
    with connect(target) as admin:
        drop_stale_scratch_databases(admin, target, prefix)
        autocommit(target, f'CREATE DATABASE "{name}"')
        try:
            scratch = replace(target, url=target.url.set(database=name))
            args = [pgtools.binary("pg_restore"), "--no-password", f"--dbname={name}"]
            if dump.format == "directory" and dump.jobs > 1:
                args.append(f"--jobs={dump.jobs}")
            pgtools.run([*args, str(dump.path)], url=target.url)
            yield scratch
        finally:
            autocommit(target, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_stale_scratch_databases(connection: Connection, target: Target, prefix: str) -> list[str]:
    """Drop scratch copies of this target that a killed run left behind."""
    prefix = f"{prefix}{target.name.replace('-', '_')}_"
    stale = list(connection.execute(
        text("SELECT datname FROM pg_database WHERE starts_with(datname, :prefix)"),
        {"prefix": prefix},
    ).scalars())  # fmt: skip
    connection.rollback()
    for name in stale:
        autocommit(target, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return stale


def autocommit(target: Target, statement: str) -> None:
    """CREATE and DROP DATABASE refuse to run inside a transaction: a connection of its own."""
    engine = target_engine(target).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(statement)
    finally:
        engine.dispose()
