"""PostgreSQL: ``pg_dump`` from an exported snapshot, ``pg_restore``, scratch databases.

The dump is taken from a snapshot exported by a REPEATABLE READ transaction, so the row counts
read in that transaction describe exactly the dumped data. Large databases get the directory
format with parallel jobs; the result is checked with ``pg_restore --list``.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, PendingRollbackError, SQLAlchemyError

from autopr_migrate.backends import pgtools
from autopr_migrate.backends.connections import connect, row_counts, target_engine
from autopr_migrate.backends.dialects import (
    DatabaseLock,
    Dump,
    DumpPath,
    LongTransaction,
    SessionFacts,
)
from autopr_migrate.backends.files import remove_path
from autopr_migrate.backends.migration_lock import (
    MIGRATION_LOCK_KEY,
    holds_advisory_lock,
    release_advisory_lock,
    try_advisory_lock,
)
from autopr_migrate.errors import LockUnavailable
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.targets.targets import Target

# Index builds dominate a restore; give them memory.
_RESTORE_SESSION = "-c maintenance_work_mem=512MB"
_RELATION_KINDS = {"TABLE", "VIEW", "MATERIALIZED VIEW", "SEQUENCE"}
_TYPE_KINDS = {"TYPE", "DOMAIN"}


class PostgreSQL:
    name = "postgresql"
    records_plans_on_a_live_copy = False
    dump_size_ratio = 0.2  # custom format, compressed: 23 of 127 MiB in bench/overhead.py

    def size(self, connection: Connection, target: Target) -> int:
        size = connection.scalar(text("SELECT pg_database_size(current_database())"))
        connection.rollback()
        return int(size)

    @contextmanager
    def database_lock(
        self, connection: Connection, target: Target, *, wait_seconds: float
    ) -> Iterator[DatabaseLock]:
        """A session-level advisory lock on ``connection``."""
        deadline = time.monotonic() + wait_seconds
        while not try_advisory_lock(connection):
            if time.monotonic() >= deadline:
                raise LockUnavailable(
                    f"another session holds the migration lock of target {target.name!r}"
                    f"{_advisory_lock_holder(connection)} (a plain `alembic` run or another "
                    f"tool); waited {wait_seconds:g} s"
                )
            time.sleep(0.5)
        try:
            yield DatabaseLock(connection, target, lambda: _still_holds(connection))
        finally:
            # A dead session released its locks with it; never hide the real error behind this.
            with suppress(SQLAlchemyError):
                release_advisory_lock(connection)

    def ensure_locked(self, connection: Connection, target: Target) -> None:
        """SQLAlchemy reconnects a connection whose session died, silently; the new session
        holds no advisory lock and none of the timeouts."""
        try:
            _hold_again(connection, target)
        except (DBAPIError, PendingRollbackError) as exc:
            # PendingRollbackError: the session died under an earlier statement, not this one.
            if isinstance(exc, DBAPIError) and not exc.connection_invalidated:
                raise
            connection.rollback()  # clears the dead session; the next statement opens a new one
            _hold_again(connection, target)

    def lock_is_free(self, connection: Connection, target: Target) -> bool:
        if not try_advisory_lock(connection):
            return False
        release_advisory_lock(connection)
        return True

    def dump(
        self, target: Target, policy: BackupPolicy, path_for: DumpPath, database_bytes: int
    ) -> Dump:
        fmt, jobs = choose_format(policy, database_bytes)
        engine = target_engine(target)
        try:
            with engine.connect() as connection:
                snapshot_reader = connection.execution_options(isolation_level="REPEATABLE READ")
                with snapshot_reader.begin():
                    snapshot = snapshot_reader.scalar(text("SELECT pg_export_snapshot()"))
                    revision = alembic_ops.current(target.project, snapshot_reader)
                    counts = row_counts(snapshot_reader)
                    path = path_for(revision, fmt)
                    args = [
                        pgtools.binary("pg_dump"),
                        f"--format={fmt}",
                        f"--compress={policy.compression}",
                        f"--file={path}",
                        f"--snapshot={snapshot}",
                        f"--lock-wait-timeout={int(policy.lock_wait_seconds * 1000)}",
                        "--no-password",
                    ]
                    if fmt == "directory":
                        args.append(f"--jobs={jobs}")
                    try:
                        pgtools.run(args, url=target.url)
                    except pgtools.ToolError:
                        remove_path(path)
                        raise
        finally:
            engine.dispose()
        listing = pgtools.run([pgtools.binary("pg_restore"), "--list", str(path)], url=target.url)
        if "TABLE DATA" not in listing.stdout and counts:
            remove_path(path)
            raise pgtools.ToolError(f"pg_restore --list finds no table data in {path.name}")
        return Dump(path, revision, fmt, policy.compression, jobs, counts)

    def restore(self, target: Target, path: Path, *, jobs: int) -> str:
        args = [
            pgtools.binary("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-password",
            f"--dbname={target.url.database}",
        ]
        if jobs > 1:
            # Parallel jobs cannot share one transaction; for large databases speed wins, and
            # the current state was dumped first.
            args.append(f"--jobs={jobs}")
            method = f"pg_restore --jobs={jobs}"
        else:
            args.append("--single-transaction")
            method = "pg_restore --single-transaction"
        args.append(str(path))
        pgtools.run(args, url=target.url, options=_RESTORE_SESSION)
        return method

    def drop_objects_not_in(self, target: Target, path: Path) -> list[str]:
        """Before the restore, so that ``pg_restore --clean`` can drop and recreate the dump's
        own tables (a new table's foreign key to one of them would stop it)."""
        listing = pgtools.run(
            [pgtools.binary("pg_restore"), "--list", str(path)], url=target.url
        ).stdout
        in_dump = _toc_objects(listing)
        dropped: list[str] = []
        with connect(target) as connection, connection.begin():
            quote = connection.dialect.identifier_preparer.quote
            for kind, schema, name in _live_objects(connection):
                if (kind, schema, name) in in_dump:
                    continue
                connection.execute(
                    text(f"DROP {kind} IF EXISTS {quote(schema)}.{quote(name)} CASCADE")
                )
                dropped.append(f"{kind.lower()} {schema}.{name}")
        return dropped

    @contextmanager
    def scratch_copy(
        self, target: Target, path: Path, *, jobs: int, directory: Path, prefix: str
    ) -> Iterator[Target]:
        """A new database on the same server, named by ``scratch_family`` and a random suffix,
        always dropped (stale copies a killed run left behind are dropped first)."""
        name = f"{scratch_family(target, prefix)}{uuid.uuid4().hex[:10]}"
        with connect(target) as admin:
            drop_stale_scratch_databases(admin, target, prefix)
        autocommit(target, f'CREATE DATABASE "{name}"')
        try:
            scratch = replace(target, url=target.url.set(database=name))
            args = [pgtools.binary("pg_restore"), "--no-password", f"--dbname={name}"]
            if jobs > 1:
                args.append(f"--jobs={jobs}")
            pgtools.run([*args, str(path)], url=target.url)
            yield scratch
        finally:
            autocommit(target, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def may_create_databases(self, connection: Connection) -> bool:
        allowed = connection.scalar(
            text("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
        )
        connection.rollback()
        return bool(allowed)

    def invalid_indexes(self, connection: Connection) -> set[str]:
        found = set(
            connection.execute(
                text("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid")
            ).scalars()
        )
        connection.rollback()
        return found

    def long_transactions(self, connection: Connection, older_than: float) -> list[LongTransaction]:
        rows = connection.execute(
            text(
                "SELECT pid, EXTRACT(EPOCH FROM now() - xact_start) AS seconds, state, "
                "application_name, left(query, 200) AS query FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND xact_start < now() - make_interval(secs => :age) ORDER BY xact_start"
            ),
            {"age": older_than},
        ).all()
        connection.rollback()
        return [
            LongTransaction(
                r.pid, float(r.seconds), r.state or "", r.application_name or "", r.query
            )
            for r in rows
        ]

    def session_facts(self, connection: Connection) -> SessionFacts:
        # The database's oid and the server's start time tell two servers apart (a unix socket
        # and TCP to the same server do not) without the privileges pg_control_system needs.
        row = connection.execute(
            text(
                "SELECT pg_backend_pid() AS pid, current_database() AS database, "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) AS oid, "
                "pg_postmaster_start_time() AS started, "
                "current_setting('lock_timeout') AS lock_timeout, "
                "current_setting('statement_timeout') AS statement_timeout"
            )
        ).one()
        return SessionFacts(
            database=row.database,
            session_id=f"pid {row.pid}",
            settings={
                "lock_timeout": row.lock_timeout,
                "statement_timeout": row.statement_timeout,
            },
            identity=f"{row.database}/{row.oid}/{row.started.isoformat()}",
        )


BACKEND = PostgreSQL()


def _still_holds(connection: Connection) -> bool:
    try:
        return holds_advisory_lock(connection)
    except (DBAPIError, PendingRollbackError):
        return False  # the session died, and its lock with it


def _hold_again(connection: Connection, target: Target) -> None:
    if not holds_advisory_lock(connection) and not try_advisory_lock(connection):
        raise LockUnavailable(
            f"the migrating session of target {target.name!r} was lost, and another session "
            f"took the migration lock{_advisory_lock_holder(connection)}"
        )


def _advisory_lock_holder(connection: Connection) -> str:
    row = connection.execute(
        text(
            "SELECT a.pid, a.application_name, a.client_addr FROM pg_locks l "
            "JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND ((l.classid::bigint << 32) | l.objid::bigint) = :key"
        ),
        {"key": MIGRATION_LOCK_KEY},
    ).first()
    connection.commit()
    if row is None:
        return ""
    return f" (pid {row.pid}, {row.application_name or 'no application name'})"


def choose_format(policy: BackupPolicy, database_bytes: int) -> tuple[str, int]:
    """(format, jobs): the directory format with parallel jobs for large databases."""
    jobs = policy.jobs or os.cpu_count() or 1
    fmt = policy.format
    if fmt == "auto":
        fmt = "directory" if database_bytes > policy.directory_format_above_bytes else "custom"
    return fmt, (jobs if fmt == "directory" else 1)


def scratch_family(target: Target, prefix: str) -> str:
    """The name every scratch copy of this target's database starts with.

    It names the target and (hashed, to fit 63 characters) the source database, so copies of
    two databases that share a target name on one server are never taken for each other's.
    """
    source = hashlib.sha256((target.url.database or "").encode()).hexdigest()[:8]
    return f"{prefix}{target.name.replace('-', '_')[:20]}_{source}_"


def drop_stale_scratch_databases(connection: Connection, target: Target, prefix: str) -> list[str]:
    """Drop scratch copies of this database that a killed run left behind: nobody is connected
    to them (a copy a live run still uses is left alone). Copies named the way earlier releases
    named them (``<prefix><target>_<10 hex>``) count too."""
    legacy = "^" + re.escape(f"{prefix}{target.name.replace('-', '_')}_") + "[0-9a-f]{10}$"
    stale = list(
        connection.execute(
            text(
                "SELECT datname FROM pg_database d WHERE (starts_with(datname, :family) OR "
                "datname ~ :legacy) AND NOT EXISTS "
                "(SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)"
            ),
            {"family": scratch_family(target, prefix), "legacy": legacy},
        ).scalars()
    )
    connection.rollback()
    dropped = []
    for name in stale:
        try:
            autocommit(target, f'DROP DATABASE IF EXISTS "{name}"')
        except DBAPIError:  # someone connected to it meanwhile: not stale after all
            continue
        dropped.append(name)
    return dropped


def autocommit(target: Target, statement: str) -> None:
    """CREATE and DROP DATABASE refuse to run inside a transaction: a connection of its own."""
    engine = target_engine(target).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _toc_objects(listing: str) -> set[tuple[str, str, str]]:
    """(kind, schema, name) of the relations and types in a ``pg_restore --list``."""
    found = set()
    for line in listing.splitlines():
        if line.startswith(";") or ";" not in line:
            continue
        words = line.split(";", 1)[1].split()[2:]  # drop the catalog and object oids
        for kind in (*_RELATION_KINDS, *_TYPE_KINDS):
            size = len(kind.split())
            if " ".join(words[:size]) == kind and len(words) >= size + 2:
                found.add((kind, words[size], words[size + 1]))
    return found


def _live_objects(connection: Connection) -> list[tuple[str, str, str]]:
    rows = connection.execute(
        text(
            "SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' "
            "WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, n.nspname, c.relname "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND n.nspname NOT IN "
            "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e') "
            "UNION ALL SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, "
            "t.typname FROM pg_type t "
            "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype IN ('e', 'd') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e') "
            "ORDER BY 1 DESC"
        )
    ).all()
    return [tuple(row) for row in rows]
