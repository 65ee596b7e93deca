"""Backups: taken right before a change, verified, and described by a JSON sidecar.

The backend writes and checks the dump (PostgreSQL: ``pg_dump`` from an exported snapshot;
SQLite: the online backup API); here it gets its name, becomes private, is measured and hashed,
and its sidecar is written last. Backups hold all the data: files are ``0600`` in a ``0700``
directory.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from autopr_migrate.backends import pgtools
from autopr_migrate.backends.registry import backend_for
from autopr_migrate.errors import BackupFailed
from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.store.backups import Backup, seal
from autopr_migrate.store.directory import ready_backup_directory
from autopr_migrate.targets.targets import Target

LOG = logging.getLogger(__name__)
_SUFFIXES = {"custom": ".dump", "directory": ".dir", "sqlite": ".sqlite3"}


def take_backup(
    target: Target,
    policy: BackupPolicy,
    *,
    label: str = "pre-upgrade",
    database_bytes: int = 0,
    log: logging.Logger | logging.LoggerAdapter = LOG,
) -> Backup:
    """Back up ``target`` into its backup directory and verify the result.

    Raises:
        BackupFailed: nothing usable was written; the database was not touched.
    """
    directory = ready_backup_directory(target)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    started = time.monotonic()

    def path_for(revision: str | None, fmt: str) -> Path:
        name = f"{target.name}-{stamp}-{(revision or 'base').replace(',', '+')}-{label}"
        return directory / f"{name}{_SUFFIXES[fmt]}"

    try:
        dump = backend_for(target).dump(target, policy, path_for, database_bytes)
    except (pgtools.ToolError, OSError, sqlite3.Error) as exc:
        raise BackupFailed(
            f"the {label} backup of target {target.name!r} failed: {exc}; nothing was changed"
        ) from None
    created = datetime.now(UTC).isoformat(timespec="seconds")
    backup = Backup(
        dump.path,
        target.name,
        label,
        dump.revision,
        created,
        0,
        "",
        0.0,
        dump.format,
        dump.compression,
        dump.jobs,
        dump.row_counts,
    )
    backup = seal(backup, started)
    log.info(
        "backup %s: %s, %d bytes, %s format, %.2f s, revision %s, %d rows in %d tables",
        label,
        backup.path.name,
        backup.bytes,
        backup.format,
        backup.seconds,
        backup.revision or "base",
        sum(backup.row_counts.values()),
        len(backup.row_counts),
    )
    return backup
