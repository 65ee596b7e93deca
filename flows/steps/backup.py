"""Backups: taken right before a change, verified, and described by a JSON sidecar.

PostgreSQL: ``pg_dump`` from an exported snapshot (so the sidecar's row counts describe exactly
the dumped data), custom format with fast compression, or the directory format with parallel
jobs for large databases; checked with ``pg_restore --list``. SQLite: the online backup API,
checked with ``PRAGMA integrity_check``. Backups hold all the data: files are ``0600`` in a
``0700`` directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Connection, inspect, text

from autopr.database.schema import database_revision
from flows import pgtools
from flows.backup_directory import ready_backup_directory
from flows.database import target_engine
from flows.errors import BackupFailed
from flows.policy import BackupPolicy
from flows.targets import Target

SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class Backup:
    """A verified backup and what its sidecar says about it."""

    path: Path
    target: str
    label: str
    revision: str | None
    created_at: str
    bytes: int
    sha256: str
    seconds: float
    format: str
    compression: int | None
    jobs: int
    row_counts: dict[str, int] = field(default_factory=dict)

    @property
    def sidecar(self) -> Path:
        return sidecar_path(self.path)

    def to_json(self) -> dict:
        data = asdict(self)
        data["path"] = self.path.name
        return data


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def load_backup(path: Path) -> Backup:
    """Read a backup's sidecar."""
    data = json.loads(sidecar_path(path).read_text())
    data["path"] = path
    return Backup(**data)


def digest(path: Path) -> str:
    """sha256 of a file, or of a directory's files (names and contents, in name order)."""
    total = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for item in files:
        if path.is_dir():
            total.update(item.relative_to(path).as_posix().encode() + b"\0")
        with item.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                total.update(chunk)
    return total.hexdigest()


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def row_counts(connection: Connection) -> dict[str, int]:
    counts = {}
    for table in sorted(inspect(connection).get_table_names()):
        quoted = connection.dialect.identifier_preparer.quote(table)
        counts[table] = int(connection.scalar(text(f"SELECT count(*) FROM {quoted}")))
    return counts


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
    backup = _finish(backup, started)
    logger.info(
        "backup %s: %s, %d bytes, %s format, %.2f s, revision %s, %d rows in %d tables",
        label, backup.path.name, backup.bytes, backup.format, backup.seconds,
        backup.revision or "base", sum(backup.row_counts.values()), len(backup.row_counts),
    )  # fmt: skip
    return backup


def _finish(backup: Backup, started: float) -> Backup:
    _private(backup.path)
    finished = replace(
        backup,
        bytes=size_of(backup.path),
        sha256=digest(backup.path),
        seconds=round(time.monotonic() - started, 3),
    )
    sidecar = finished.sidecar
    descriptor = os.open(sidecar, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(finished.to_json(), handle, indent=2, sort_keys=True)
    return finished


def _private(path: Path) -> None:
    if path.is_dir():
        os.chmod(path, 0o700)
        for item in path.rglob("*"):
            os.chmod(item, 0o700 if item.is_dir() else 0o600)
    else:
        os.chmod(path, 0o600)


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
                    _remove(path)
                    raise
    finally:
        engine.dispose()
    listing = pgtools.run([pgtools.binary("pg_restore"), "--list", str(path)], url=target.url)
    if "TABLE DATA" not in listing.stdout and counts:
        _remove(path)
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


def _remove(path: Path) -> None:
    if path.is_dir():
        for item in sorted(path.rglob("*"), reverse=True):
            item.rmdir() if item.is_dir() else item.unlink()
        path.rmdir()
    elif path.exists():
        path.unlink()


def remove_backup(backup: Backup) -> None:
    """Delete a backup and its sidecar (the sidecar last: a half-deleted backup stays listed)."""
    _remove(backup.path)
    backup.sidecar.unlink(missing_ok=True)
