"""The migration lock, in two layers.

1. A Prefect global concurrency limit ``migrate-<target>`` (limit 1), held from preflight to
   the report, so the plan that was approved is exactly what runs and a second run waits or
   fails clearly. (A deployment's own concurrency limit is released while a run is paused.)
2. On the connection that migrates: a PostgreSQL advisory lock, which plain ``alembic`` takes
   too; on SQLite an exclusive lock file beside the database.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import get_client
from prefect.concurrency.sync import concurrency
from sqlalchemy import Connection, text

from autopr.database.schema import MIGRATION_LOCK_KEY
from flows.errors import LockUnavailable
from flows.targets import Target


def limit_name(target: Target) -> str:
    return f"migrate-{target.name}"


def ensure_limit(target: Target) -> str:
    """Create the target's concurrency limit if it does not exist (idempotent)."""
    name = limit_name(target)
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    return name


@contextmanager
def run_lock(target: Target, *, wait_seconds: float) -> Iterator[None]:
    """Hold ``migrate-<target>``; raise ``LockUnavailable`` after ``wait_seconds``."""
    name = ensure_limit(target)
    try:
        with concurrency(name, occupy=1, timeout_seconds=max(wait_seconds, 0.1), strict=True):
            yield
    except TimeoutError:
        raise LockUnavailable(
            f"another run is migrating target {target.name!r} (it holds the concurrency limit "
            f"{name}); waited {wait_seconds:g} s. Let it finish, or raise policy.lock.wait_seconds"
        ) from None


@contextmanager
def database_lock(connection: Connection, target: Target, *, wait_seconds: float) -> Iterator[None]:
    """Hold the database-side lock on ``connection`` for as long as the block runs."""
    if connection.dialect.name == "postgresql":
        with _advisory_lock(connection, target, wait_seconds=wait_seconds):
            yield
        return
    with _lock_file(target, wait_seconds=wait_seconds):
        yield


@contextmanager
def _advisory_lock(
    connection: Connection, target: Target, *, wait_seconds: float
) -> Iterator[None]:
    deadline = time.monotonic() + wait_seconds
    while True:
        taken = connection.scalar(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
        )
        connection.commit()
        if taken:
            break
        if time.monotonic() >= deadline:
            holder = _advisory_lock_holder(connection)
            raise LockUnavailable(
                f"another session holds the migration lock of target {target.name!r}{holder} "
                f"(a plain `alembic` run or another tool); waited {wait_seconds:g} s"
            )
        time.sleep(0.5)
    try:
        yield
    finally:
        if connection.in_transaction():
            connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()


def _advisory_lock_holder(connection: Connection) -> str:
    row = connection.execute(
        text(
            "SELECT a.pid, a.application_name, a.client_addr FROM pg_locks l "
            "JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' "
            "AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = :key"
        ),
        {"key": MIGRATION_LOCK_KEY},
    ).first()
    connection.commit()
    if row is None:
        return ""
    return f" (pid {row.pid}, {row.application_name or 'no application name'})"


def lock_file_path(target: Target) -> Path:
    return Path(f"{target.url.database}.migrate-lock")


@contextmanager
def _lock_file(target: Target, *, wait_seconds: float) -> Iterator[None]:
    path = lock_file_path(target)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockUnavailable(
                        f"another process holds the migration lock file {path} of target "
                        f"{target.name!r}; waited {wait_seconds:g} s"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
