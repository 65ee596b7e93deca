"""The lock every migration of a database takes: the migration flows and plain ``alembic``.

PostgreSQL: a session-level advisory lock. SQLite: an exclusive ``flock`` on a file beside the
database. Either way two migrations of one database never interleave.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, text

# The value spells "autopr-m".
MIGRATION_LOCK_KEY = 0x6175746F70722D6D


def try_advisory_lock(connection: Connection) -> bool:
    """Take the advisory lock on this session if it is free; commit, so nothing stays open."""
    taken = connection.scalar(
        text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
    )
    connection.commit()
    return bool(taken)


def holds_advisory_lock(connection: Connection) -> bool:
    """Whether this session holds the lock now (its session may have died and been replaced)."""
    held = connection.scalar(
        text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = :key"
        ),
        {"key": MIGRATION_LOCK_KEY},
    )
    connection.commit()
    return bool(held)


def release_advisory_lock(connection: Connection) -> None:
    if connection.in_transaction():
        connection.rollback()
    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.commit()


def sqlite_lock_file(database: str) -> Path:
    return Path(f"{database}.migrate-lock")


@dataclass(frozen=True)
class HeldLockFile:
    path: Path
    descriptor: int

    def still_held(self) -> bool:
        """False once the file was deleted or replaced: another process may lock the new one."""
        try:
            return os.stat(self.path).st_ino == os.fstat(self.descriptor).st_ino
        except OSError:
            return False


@contextmanager
def hold_lock_file(database: str, *, wait_seconds: float = 0) -> Iterator[HeldLockFile]:
    """Hold the SQLite database's lock file.

    Raises:
        TimeoutError: another process held it for ``wait_seconds``.
    """
    path = sqlite_lock_file(database)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(str(path)) from None
                time.sleep(0.2)
        try:
            yield HeldLockFile(path, descriptor)
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
