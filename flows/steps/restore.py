"""Putting the database back: Alembic downgrade first, the backup when that is not enough.

A restore first dumps the current (broken) state, so nothing is lost for good, verifies the
backup against its sidecar's sha256, restores it, drops tables the backup did not have, and
checks the revision and every table's row count against the sidecar.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Connection, inspect, text

from autopr.database.schema import database_revision
from flows import alembic_ops, pgtools
from flows.database import connect
from flows.errors import BackupFailed, DowngradeFailed, RestoreFailed, describe
from flows.policy import BackupPolicy
from flows.steps.backup import Backup, digest, row_counts, take_backup
from flows.targets import Target

# Index builds dominate a restore; give them memory. One commit at the end, so no fsync wait.
_RESTORE_SESSION = "-c maintenance_work_mem=512MB -c synchronous_commit=off"


@task(name="downgrade", cache_policy=NO_CACHE)
def downgrade_to(connection: Connection, revision: str | None) -> str | None:
    """Alembic downgrade to ``revision`` on the migrating connection; return where it ended.

    Raises:
        DowngradeFailed: a downgrade step failed, or it stopped elsewhere.
    """
    logger = get_run_logger()
    _end_transaction(connection)
    try:
        alembic_ops.downgrade(
            connection,
            revision,
            on_revision=lambda rev, doc, _up: logger.info("downgraded %s (%s)", rev, doc),
        )
    except Exception as exc:  # any failure inside a revision's downgrade() is ours to report
        _end_transaction(connection)
        raise DowngradeFailed(
            f"the downgrade to {revision or 'base'} failed: {describe(exc)}"
        ) from exc
    reached = alembic_ops.current(connection)
    _end_transaction(connection)
    if reached != revision:
        raise DowngradeFailed(f"the downgrade stopped at {reached}, not {revision or 'base'}")
    logger.info("database downgraded to %s", revision or "base")
    return reached


@dataclass(frozen=True)
class RestoreResult:
    backup: str
    broken_state_dump: str | None
    seconds: float
    dropped_tables: list[str]
    method: str


@task(name="restore-backup", cache_policy=NO_CACHE)
def restore_backup(target: Target, backup: Backup, policy: BackupPolicy) -> RestoreResult:
    """Dump the current state, then restore ``backup`` and verify it.

    Raises:
        RestoreFailed: the backup did not verify, the restore failed, or the result differs.
    """
    logger = get_run_logger()
    if not backup.path.exists() or digest(backup.path) != backup.sha256:
        raise RestoreFailed(
            f"the backup {backup.path} no longer matches the sha256 in its sidecar; it was not "
            f"restored and the database was not changed"
        )
    broken_dump = _dump_current_state(target, policy, logger)
    started = time.monotonic()
    try:
        method = restore_database(target, backup)
    except (pgtools.ToolError, sqlite3.Error, OSError) as exc:
        raise RestoreFailed(f"restoring {backup.path.name} failed: {exc}") from None
    dropped = _drop_tables_not_in(target, backup)
    verify_restored(target, backup)
    seconds = time.monotonic() - started
    logger.info(
        "restored %s (%s) in %.2f s; revision %s and %d tables' row counts verified",
        backup.path.name, method, seconds, backup.revision or "base", len(backup.row_counts),
    )  # fmt: skip
    return RestoreResult(backup.path.name, broken_dump, seconds, dropped, method)


def _dump_current_state(target: Target, policy: BackupPolicy, logger) -> str | None:
    try:
        dump = take_backup.fn(target, policy, label="pre-restore")
    except BackupFailed as exc:
        logger.warning("could not dump the current state before restoring: %s", exc)
        return None
    return dump.path.name


def restore_database(target: Target, backup: Backup) -> str:
    """Replace the database's contents with ``backup``; return how it was done."""
    if target.dialect == "postgresql":
        return _restore_postgresql(target, backup)
    return _restore_sqlite(target, backup)


def _restore_postgresql(target: Target, backup: Backup) -> str:
    args = [pgtools.binary("pg_restore"), "--clean", "--if-exists", "--no-password",
            f"--dbname={target.url.database}"]  # fmt: skip
    if backup.format == "directory" and backup.jobs > 1:
        # Parallel jobs cannot share one transaction; for large databases speed wins, and the
        # broken state was dumped first.
        args.append(f"--jobs={backup.jobs}")
        method = f"pg_restore --jobs={backup.jobs}"
    else:
        args.append("--single-transaction")
        method = "pg_restore --single-transaction"
    args.append(str(backup.path))
    pgtools.run(args, url=target.url, options=_RESTORE_SESSION)
    return method


def _restore_sqlite(target: Target, backup: Backup) -> str:
    live = Path(target.url.database or "")
    source = sqlite3.connect(f"file:{backup.path}?mode=ro", uri=True)
    destination = sqlite3.connect(live, timeout=30)
    try:
        source.backup(destination)
    finally:
        destination.close()
        source.close()
    for leftover in (Path(f"{live}-journal"),):
        if leftover.exists() and leftover.stat().st_size == 0:
            leftover.unlink()
    return "sqlite backup API"


def _drop_tables_not_in(target: Target, backup: Backup) -> list[str]:
    with connect(target) as connection:
        extra = sorted(set(inspect(connection).get_table_names()) - set(backup.row_counts))
        for table in extra:
            quoted = connection.dialect.identifier_preparer.quote(table)
            cascade = " CASCADE" if connection.dialect.name == "postgresql" else ""
            connection.execute(text(f"DROP TABLE IF EXISTS {quoted}{cascade}"))
        connection.commit()
    return extra


def verify_restored(target: Target, backup: Backup) -> None:
    with connect(target) as connection:
        revision = database_revision(connection)
        counts = row_counts(connection)
        connection.rollback()
    if revision != backup.revision:
        raise RestoreFailed(
            f"after restoring {backup.path.name} the database is at {revision or 'base'}, "
            f"not {backup.revision or 'base'}"
        )
    if counts != backup.row_counts:
        differing = sorted(t for t in counts.keys() | backup.row_counts.keys()
                           if counts.get(t) != backup.row_counts.get(t))  # fmt: skip
        raise RestoreFailed(
            f"after restoring {backup.path.name} the row counts differ in {', '.join(differing)}"
        )


def _end_transaction(connection: Connection) -> None:
    if connection.in_transaction():
        connection.rollback()
