"""Restoring the backup, when an Alembic downgrade could not put the database back.

It first dumps the current (broken) state, so nothing is lost for good, verifies the
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
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from autopr_migrate.backends import pgtools
from autopr_migrate.backends.connections import connect
from autopr_migrate.errors import BackupFailed, RestoreFailed, describe
from autopr_migrate.history.commands import current as database_revision
from autopr_migrate.orchestration.steps.backup import take_backup
from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.store.backups import Backup, digest, row_counts
from autopr_migrate.store.ledger import LEDGER_TABLE
from autopr_migrate.targets.targets import Target

# Index builds dominate a restore; give them memory.
_RESTORE_SESSION = "-c maintenance_work_mem=512MB"
_RELATION_KINDS = {"TABLE", "VIEW", "MATERIALIZED VIEW", "SEQUENCE"}
_TYPE_KINDS = {"TYPE", "DOMAIN"}


@dataclass(frozen=True)
class RestoreResult:
    backup: str
    broken_state_dump: str | None
    seconds: float
    dropped: list[str]
    method: str
    count_differences: list[str]


@task(name="restore-backup", cache_policy=NO_CACHE)
def restore_backup(
    target: Target, backup: Backup, policy: BackupPolicy, *, require_dump: bool = False
) -> RestoreResult:
    """Dump the current state, then restore ``backup`` and verify it.

    With ``require_dump`` (a restore someone asked for, over a state that may hold writes worth
    keeping), a failed dump stops it before anything changes; an automatic recovery goes on.

    Raises:
        RestoreFailed: the backup did not verify, the restore failed, or the result differs.
        BackupFailed: with ``require_dump``, the current state could not be dumped.
    """
    logger = get_run_logger()
    if not backup.path.exists() or digest(backup.path) != backup.sha256:
        raise RestoreFailed(
            f"the backup {backup.path} no longer matches the sha256 in its sidecar; it was not "
            f"restored and the database was not changed"
        )
    broken_dump = _dump_current_state(target, policy, logger, required=require_dump)
    started = time.monotonic()
    try:
        dropped = drop_objects_not_in(target, backup)
        method = restore_database(target, backup)
    except (pgtools.ToolError, sqlite3.Error, OSError, DBAPIError) as exc:
        raise RestoreFailed(f"restoring {backup.path.name} failed: {describe(exc)}") from None
    differences = verify_restored(target, backup)
    seconds = time.monotonic() - started
    logger.info(
        "restored %s (%s) in %.2f s; revision %s verified; dropped %d object(s) the backup did "
        "not have; row counts %s",
        backup.path.name, method, seconds, backup.revision or "base", len(dropped),
        "match the backup" if not differences else f"differ in {', '.join(differences)}",
    )  # fmt: skip
    return RestoreResult(backup.path.name, broken_dump, seconds, dropped, method, differences)


def _dump_current_state(
    target: Target, policy: BackupPolicy, logger, *, required: bool
) -> str | None:
    try:
        dump = take_backup.fn(target, policy, label="pre-restore")
    except BackupFailed as exc:
        if required:
            raise BackupFailed(f"the current state could not be dumped first ({exc}); nothing "
                               f"was restored and the database is unchanged") from None  # fmt: skip
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


def drop_objects_not_in(target: Target, backup: Backup) -> list[str]:
    """Drop what the failed migration created and the backup does not have.

    Before the restore, so that ``pg_restore --clean`` can drop and recreate the backup's own
    tables (a new table's foreign key to one of them would stop it). The broken state was dumped
    first. SQLite restores the whole file, so there is nothing to do there.
    """
    if target.dialect != "postgresql":
        return []
    listing = pgtools.run([pgtools.binary("pg_restore"), "--list", str(backup.path)],
                          url=target.url).stdout  # fmt: skip
    in_backup = _toc_objects(listing)
    dropped: list[str] = []
    with connect(target) as connection, connection.begin():
        for kind, schema, name in _live_objects(connection):
            if (kind, schema, name) in in_backup:
                continue
            quote = connection.dialect.identifier_preparer.quote
            connection.execute(text(
                f"DROP {kind} IF EXISTS {quote(schema)}.{quote(name)} CASCADE"))  # fmt: skip
            dropped.append(f"{kind.lower()} {schema}.{name}")
    return dropped


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
    rows = connection.execute(text(
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
    )).all()  # fmt: skip
    return [tuple(row) for row in rows]


def verify_restored(target: Target, backup: Backup) -> list[str]:
    """Check the revision (or fail); return the tables whose row counts differ from the backup.

    The application keeps running during a restore and may write at once, so a count that
    differs is reported, not treated as a failed restore.
    """
    with connect(target) as connection:
        revision = database_revision(connection)
        counts = row_counts(connection)
        connection.rollback()
    if revision != backup.revision:
        raise RestoreFailed(
            f"after restoring {backup.path.name} the database is at {revision or 'base'}, "
            f"not {backup.revision or 'base'}"
        )
    return sorted(
        table
        for table in counts.keys() | backup.row_counts.keys()
        if counts.get(table) != backup.row_counts.get(table) and table != LEDGER_TABLE
    )
