"""SQLite: the online backup API for dumps, restores and scratch copies.

A dump is a plain database file checked with ``PRAGMA integrity_check``; a restore copies the
whole file back, so nothing the dump lacks survives it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Connection

from autopr_migrate.backends.dialects import (
    DatabaseLock,
    Dump,
    DumpPath,
    LongTransaction,
    SessionFacts,
)
from autopr_migrate.backends.migration_lock import hold_lock_file
from autopr_migrate.errors import LockUnavailable
from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.targets.targets import Target


class SQLite:
    name = "sqlite"
    records_plans_on_a_live_copy = True
    dump_size_ratio = 1.0

    def size(self, connection: Connection, target: Target) -> int:
        path = database_file(target)
        return sum(
            candidate.stat().st_size
            for candidate in (path, Path(f"{path}-wal"))
            if candidate.exists()
        )

    @contextmanager
    def database_lock(
        self, connection: Connection, target: Target, *, wait_seconds: float
    ) -> Iterator[DatabaseLock]:
        """An exclusive ``flock`` on a file beside the database, which ``env.py`` takes too."""
        with ExitStack() as stack:
            try:
                held = stack.enter_context(
                    hold_lock_file(target.url.database or "", wait_seconds=wait_seconds)
                )
            except TimeoutError as exc:
                raise LockUnavailable(
                    f"another process holds the migration lock file {exc} of target "
                    f"{target.name!r}; waited {wait_seconds:g} s"
                ) from None
            yield DatabaseLock(connection, target, held.still_held)

    def ensure_locked(self, connection: Connection, target: Target) -> None:
        return  # the lock file is held by this process, whatever happened to the connection

    def lock_is_free(self, connection: Connection, target: Target) -> bool:
        try:
            with hold_lock_file(target.url.database or "", wait_seconds=0):
                return True
        except TimeoutError:
            return False

    def dump(
        self, target: Target, policy: BackupPolicy, path_for: DumpPath, database_bytes: int
    ) -> Dump:
        source_path = database_file(target)
        if not source_path.exists():
            raise OSError(f"the SQLite database {source_path} does not exist")
        source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
        try:
            revision = _revision(source, target.project.version_table)
            path = path_for(revision, "sqlite")
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(descriptor)
            copy = sqlite3.connect(path)
            try:
                source.backup(copy)
                # A copy of a WAL database is in WAL mode too; a plain file is what a restore
                # wants.
                copy.execute("PRAGMA journal_mode=DELETE")
                check = copy.execute("PRAGMA integrity_check").fetchone()[0]
                if check != "ok":
                    raise sqlite3.DatabaseError(f"integrity_check of the copy says {check!r}")
                counts = _row_counts(copy)
            finally:
                copy.close()
        finally:
            source.close()
        return Dump(path, revision, "sqlite", None, 1, counts)

    def restore(self, target: Target, path: Path, *, jobs: int) -> str:
        live = database_file(target)
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        destination = sqlite3.connect(live, timeout=30)
        try:
            source.backup(destination)
        finally:
            destination.close()
            source.close()
        journal = Path(f"{live}-journal")
        if journal.exists() and journal.stat().st_size == 0:
            journal.unlink()
        return "sqlite backup API"

    def drop_objects_not_in(self, target: Target, path: Path) -> list[str]:
        return []  # the restore replaces the whole file

    @contextmanager
    def scratch_copy(
        self, target: Target, path: Path, *, jobs: int, directory: Path, prefix: str
    ) -> Iterator[Target]:
        """A copy of the dump in ``directory``, which the caller owns and removes."""
        copy = directory / f"{prefix}copy.sqlite3"
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        destination = sqlite3.connect(copy)
        try:
            source.backup(destination)
        finally:
            source.close()
            destination.close()
        yield replace(target, url=target.url.set(database=str(copy)))

    def may_create_databases(self, connection: Connection) -> bool:
        return True  # a scratch copy is a file in a directory the tool owns

    def invalid_indexes(self, connection: Connection) -> set[str]:
        return set()  # SQLite builds indexes in the transaction that asks for them

    def long_transactions(self, connection: Connection, older_than: float) -> list[LongTransaction]:
        return []  # one writer at a time: a long writer shows up as the migration lock's wait

    def session_facts(self, connection: Connection) -> SessionFacts:
        files = {row[1]: row[2] for row in connection.exec_driver_sql("PRAGMA database_list")}
        busy = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        raw = connection.connection.dbapi_connection
        return SessionFacts(
            database=str(Path(files.get("main") or ":memory:").resolve()),
            session_id=f"connection {id(raw):x}",
            settings={"busy_timeout": f"{busy} ms"},
        )


BACKEND = SQLite()


def database_file(target: Target) -> Path:
    return Path(target.url.database or "")


def _revision(connection: sqlite3.Connection, version_table: str) -> str | None:
    """The revision in the project's version table (an identifier the project file checked)."""
    has_table = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (version_table,)
    ).fetchone()
    if not has_table:
        return None
    rows = connection.execute(f'SELECT version_num FROM "{version_table}"')
    heads = sorted(row[0] for row in rows)
    return ",".join(heads) or None


def _row_counts(connection: sqlite3.Connection) -> dict[str, int]:
    tables = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    return {t: connection.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
