"""Backups: taken right before a change, verified, and described by a JSON sidecar.

PostgreSQL: ``pg_dump`` from an exported snapshot (so the sidecar's row counts describe exactly
the dumped data), custom format with fast compression, or the directory format with parallel
jobs for large databases; checked with ``pg_restore --list``. SQLite: the online backup API,
checked with ``PRAGMA integrity_check``. Backups hold all the data: files are ``0600`` in a
``0700`` directory.
"""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import text

from autopr_migrate.backends import pgtools
from autopr_migrate.backends.connections import target_engine
from autopr_migrate.errors import BackupFailed
from autopr_migrate.history.commands import current as database_revision
from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.store.backups import Backup, remove_path, row_counts, seal
from autopr_migrate.store.directory import ready_backup_directory
from autopr_migrate.targets.targets import Target


@task(name="take-backup", cache_policy=NO_CACHE)
def take_backup(
    target: Target, policy: BackupPolicy, *, label: str = "pre-upgrade", database_bytes: int = 0
) -> Backup:
    """Back up ``target`` into its backup directory and verify the result.

    Raises:
        BackupFailed: nothing usable was written; the database was not touched.
    """
    logger = get_run_logger()
    directory = ready_backup_directory(target)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    started = time.monotonic()
    try:
        if target.dialect == "postgresql":
            backup = _pg_backup(target, policy, directory, stamp, label, database_bytes)
        else:
            backup = _sqlite_backup(target, directory, stamp, label)
    except (pgtools.ToolError, OSError, sqlite3.Error) as exc:
        raise BackupFailed(
            f"the {label} backup of target {target.name!r} failed: {exc}; nothing was changed"
        ) from None
    backup = seal(backup, started)
    logger.info(
        "backup %s: %s, %d bytes, %s format, %.2f s, revision %s, %d rows in %d tables",
        label, backup.path.name, backup.bytes, backup.format, backup.seconds,
        backup.revision or "base", sum(backup.row_counts.values()), len(backup.row_counts),
    )  # fmt: skip
    return backup


def choose_format(policy: BackupPolicy, database_bytes: int) -> tuple[str, int]:
    """(format, jobs): the directory format with parallel jobs for large databases."""
    jobs = policy.jobs or os.cpu_count() or 1
    fmt = policy.format
    if fmt == "auto":
        fmt = "directory" if database_bytes > policy.directory_format_above_bytes else "custom"
    return fmt, (jobs if fmt == "directory" else 1)


def _pg_backup(
    target: Target, policy: BackupPolicy, directory: Path, stamp: str, label: str, size: int
) -> Backup:
    fmt, jobs = choose_format(policy, size)
    engine = target_engine(target)
    try:
        with engine.connect() as connection:
            snapshot_reader = connection.execution_options(isolation_level="REPEATABLE READ")
            with snapshot_reader.begin():
                snapshot = snapshot_reader.scalar(text("SELECT pg_export_snapshot()"))
                revision = database_revision(snapshot_reader)
                counts = row_counts(snapshot_reader)
                path = directory / _name(target, stamp, revision, label, fmt)
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
    return Backup(path, target.name, label, revision, _now(), 0, "", 0.0, fmt,
                  policy.compression, jobs, counts)  # fmt: skip


def _sqlite_backup(target: Target, directory: Path, stamp: str, label: str) -> Backup:
    source_path = Path(target.url.database or "")
    if not source_path.exists():
        raise OSError(f"the SQLite database {source_path} does not exist")
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    try:
        revision = _sqlite_revision(source)
        path = directory / _name(target, stamp, revision, label, "sqlite")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(descriptor)
        copy = sqlite3.connect(path)
        try:
            source.backup(copy)
            # A copy of a WAL database is in WAL mode too; a plain file is what a restore wants.
            copy.execute("PRAGMA journal_mode=DELETE")
            check = copy.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity_check of the copy says {check!r}")
            counts = _sqlite_counts(copy)
        finally:
            copy.close()
    finally:
        source.close()
    return Backup(path, target.name, label, revision, _now(), 0, "", 0.0, "sqlite", None, 1,
                  counts)  # fmt: skip


def _sqlite_revision(connection: sqlite3.Connection) -> str | None:
    has_table = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    ).fetchone()
    if not has_table:
        return None
    heads = sorted(row[0] for row in connection.execute("SELECT version_num FROM alembic_version"))
    return ",".join(heads) or None


def _sqlite_counts(connection: sqlite3.Connection) -> dict[str, int]:
    tables = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    return {t: connection.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def _name(target: Target, stamp: str, revision: str | None, label: str, fmt: str) -> str:
    suffix = {"custom": ".dump", "directory": ".dir", "sqlite": ".sqlite3"}[fmt]
    return f"{target.name}-{stamp}-{(revision or 'base').replace(',', '+')}-{label}{suffix}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
