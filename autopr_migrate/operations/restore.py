"""Restoring a backup: the last way back, and what an operator may ask for.

It verifies the backup against its sidecar's sha256, dumps the current state (so nothing is
lost for good), drops what the backup does not have, restores it, and checks the revision and
every table's row count against the sidecar.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError

from autopr_migrate.backends import pgtools
from autopr_migrate.backends.connections import connect, row_counts
from autopr_migrate.backends.registry import backend_for
from autopr_migrate.errors import BackupFailed, ConfigurationError, RestoreFailed, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.model import LEDGER_TABLE
from autopr_migrate.operations.backup import take_backup
from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.store.backups import Backup, digest
from autopr_migrate.targets.targets import Target

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Restored:
    """A backup put back: how, what it replaced, and what differs from the sidecar."""

    backup: str
    before_restore_dump: str | None
    seconds: float
    dropped: list[str]
    method: str
    count_differences: list[str]

    @property
    def state_before(self) -> str:
        """Where the state the restore replaced was kept."""
        if self.before_restore_dump is None:
            return "not kept: it could not be dumped first (see the run's log)"
        return f"dumped to {self.before_restore_dump}"


def verify_backup(backup: Backup) -> None:
    """The backup's file is there and matches its sidecar's sha256, or ``RestoreFailed``."""
    if not backup.path.exists():
        raise RestoreFailed(
            f"the backup {backup.path.name} is listed by its sidecar, but its file is gone: it "
            f"was not restored"
        )
    if digest(backup.path) != backup.sha256:
        raise RestoreFailed(
            f"the backup {backup.path.name} no longer matches the sha256 in its sidecar: it was "
            f"not restored and the database was not changed"
        )


def restore_backup(
    target: Target,
    backup: Backup,
    policy: BackupPolicy,
    *,
    require_dump: bool = False,
    log: logging.Logger | logging.LoggerAdapter = LOG,
) -> Restored:
    """Dump the current state, then restore ``backup`` and verify it.

    With ``require_dump`` (a restore someone asked for, over a state that may hold writes worth
    keeping), a failed dump stops it before anything changes; an automatic recovery goes on.

    Raises:
        RestoreFailed: the backup did not verify, the restore failed, or the result differs.
        BackupFailed: with ``require_dump``, the current state could not be dumped.
    """
    verify_backup(backup)
    before = _dump_current_state(target, policy, log, required=require_dump)
    backend = backend_for(target)
    jobs = backup.jobs if backup.format == "directory" else 1
    started = time.monotonic()
    try:
        dropped = backend.drop_objects_not_in(target, backup.path)
        method = backend.restore(target, backup.path, jobs=jobs)
    except (pgtools.ToolError, sqlite3.Error, OSError, DBAPIError) as exc:
        raise RestoreFailed(f"restoring {backup.path.name} failed: {describe(exc)}") from None
    differences = verify_restored(target, backup)
    seconds = time.monotonic() - started
    log.info(
        "restored %s (%s) in %.2f s; revision %s verified; dropped %d object(s) the backup did "
        "not have; row counts %s",
        backup.path.name,
        method,
        seconds,
        backup.revision or "base",
        len(dropped),
        "match the backup" if not differences else f"differ in {', '.join(differences)}",
    )
    return Restored(backup.path.name, before, seconds, dropped, method, differences)


def _dump_current_state(target: Target, policy: BackupPolicy, log, *, required: bool) -> str | None:
    try:
        dump = take_backup(target, policy, label="pre-restore", log=log)
    except (BackupFailed, ConfigurationError) as exc:  # the directory may be unusable too
        if required:
            raise BackupFailed(
                f"the current state could not be dumped first ({exc}); nothing "
                f"was restored and the database is unchanged"
            ) from None
        log.warning("could not dump the current state before restoring: %s", exc)
        return None
    return dump.path.name


def verify_restored(target: Target, backup: Backup) -> list[str]:
    """Check the revision (or fail); return the tables whose row counts differ from the backup.

    The application keeps running during a restore and may write at once, so a count that
    differs is reported, not treated as a failed restore.
    """
    with connect(target) as connection:
        revision = alembic_ops.current(target.project, connection)
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
