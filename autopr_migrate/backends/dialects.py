"""The dialect seam: what the tool needs from a database engine, behind one protocol.

Everything that differs between PostgreSQL and SQLite lives in ``postgresql.py`` and
``sqlite.py``; the layers above ask ``registry.backend_for(target)`` and never compare dialect
names.
A new engine is one more module implementing ``Backend`` and one line in ``registry.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection

from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.targets.targets import Target

# Where a dump goes, once its revision is known: (revision, format) -> path.
DumpPath = Callable[[str | None, str], Path]


@dataclass(frozen=True)
class Dump:
    """What a backend wrote: the file (or directory) and what it holds."""

    path: Path
    revision: str | None
    format: str
    compression: int | None
    jobs: int
    row_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DatabaseLock:
    """The database's migration lock, held by ``connection`` (SQLite: by a lock file)."""

    connection: Connection
    target: Target
    check: Callable[[], bool]

    def still_held(self) -> bool:
        """False once the session that held it died, or the lock file was replaced."""
        return self.check()


@dataclass(frozen=True)
class LongTransaction:
    """A transaction open longer than the preflight allows: DDL would queue behind it."""

    pid: int
    seconds: float
    state: str
    application: str
    query: str


@dataclass(frozen=True)
class SessionFacts:
    """Which database a session is on, and the settings a migration must run under."""

    database: str  # as a person names it
    session_id: str
    settings: dict[str, str]
    identity: str = ""  # the same for every session on this database of this server

    def same_database(self, other: SessionFacts) -> bool:
        return (self.identity or self.database) == (other.identity or other.database)


class Backend(Protocol):
    """One database engine: size, dump and restore, scratch copies, leftovers of failed builds."""

    name: str
    # A plan Alembic cannot render offline may be recorded by upgrading a copy of the live file.
    records_plans_on_a_live_copy: bool
    # What a dump weighs against the live database (1: a plain copy).
    dump_size_ratio: float

    def size(self, connection: Connection, target: Target) -> int:
        """The database's size in bytes, as a backup or rehearsal would have to move it."""
        ...

    def database_lock(
        self, connection: Connection, target: Target, *, wait_seconds: float
    ) -> AbstractContextManager[DatabaseLock]:
        """Hold the migration lock that plain ``alembic`` takes too, for the block.

        Raises ``LockUnavailable`` when another session holds it past ``wait_seconds``.
        """
        ...

    def ensure_locked(self, connection: Connection, target: Target) -> None:
        """Before undoing anything: prove ``connection`` still holds the lock, or take it again.

        Raises ``LockUnavailable`` when it was lost and another session holds it now.
        """
        ...

    def lock_is_free(self, connection: Connection, target: Target) -> bool:
        """Nobody holds the migration lock right now (checked without keeping it)."""
        ...

    def dump(
        self, target: Target, policy: BackupPolicy, path_for: DumpPath, database_bytes: int
    ) -> Dump:
        """A consistent, checked copy of the whole database.

        Raises ``OSError`` (or the engine's own error) when nothing usable was written.
        """
        ...

    def restore(self, target: Target, path: Path, *, jobs: int) -> str:
        """Replace the database's contents with the dump at ``path``; say how it was done."""
        ...

    def drop_objects_not_in(self, target: Target, path: Path) -> list[str]:
        """Drop what the live database has and the dump does not (before a restore)."""
        ...

    def scratch_copy(
        self, target: Target, path: Path, *, jobs: int, directory: Path, prefix: str
    ) -> AbstractContextManager[Target]:
        """The target, pointed at a throwaway copy of the dump (a scratch database, dropped
        afterwards; or a file in ``directory``, which the caller owns and removes)."""
        ...

    def may_create_databases(self, connection: Connection) -> bool:
        """Whether the target's role may make the scratch copies a rehearsal needs."""
        ...

    def invalid_indexes(self, connection: Connection) -> set[str]:
        """Indexes a failed concurrent build left behind (they slow every write)."""
        ...

    def long_transactions(self, connection: Connection, older_than: float) -> list[LongTransaction]:
        """Transactions of other sessions open longer than ``older_than`` seconds."""
        ...

    def session_facts(self, connection: Connection) -> SessionFacts:
        """The session's database and its lock and statement timeouts, as the server sees them."""
        ...
