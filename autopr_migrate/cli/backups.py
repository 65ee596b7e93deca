"""``autopr-migrate backups`` and ``restore-test``: what backups a target has, and proof they work.

A backup nobody has restored is a hope. ``restore-test`` verifies the file against its sha256,
restores it into a scratch database on the same server (SQLite: a file copy), and checks that
the copy is at the backup's revision with the row count of every table the sidecar recorded.
The scratch copy is always dropped; the target itself is never touched.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from autopr_migrate.backends.connections import connect, row_counts
from autopr_migrate.errors import MigrationError, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.operations.scratch import scratch_copy
from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.store.backups import Backup, digest
from autopr_migrate.store.catalog import find_backup
from autopr_migrate.store.retention import apply_retention, judge, protected_backups
from autopr_migrate.targets.targets import Target

RESTORE_TEST_PREFIX = "autopr_restoretest_"


BACKUP_COLUMNS = ("created (UTC)", "label", "revision", "size", "sha256", "retention", "file")


@dataclass(frozen=True)
class Listing:
    """A target's backups, newest first, and what retention says of each."""

    target: str
    directory: str
    rows: list[dict[str, str]]
    incomplete: str = ""  # why retention's verdicts could not be complete

    def to_json(self) -> dict:
        return asdict(self)


def list_backups(target: Target, policy: BackupPolicy) -> Listing:
    """One row per backup, newest first: when, what, how big, intact, and retention's verdict.

    It works with the database down (that is when backups matter most); retention's verdicts
    then cannot know what the ledger protects, and say so.
    """
    try:
        protected = protected_backups(target)
        unknown = ""
    except (MigrationError, DBAPIError) as exc:
        protected, unknown = {}, f"the database cannot be read ({describe(exc)})"
    rows = []
    for verdict in judge(target, policy, protected=protected):
        backup = verdict.item.backup
        cells = (
            f"{verdict.item.created:%Y-%m-%d %H:%M:%S}",
            backup.label,
            backup.revision or "base",
            _size(backup.bytes),
            verdict.item.verify(),
            _retention(verdict, unknown=bool(unknown)),
            backup.path.name,
        )
        rows.append(dict(zip(BACKUP_COLUMNS, cells, strict=True)))
    return Listing(target.name, str(target.backup_dir), rows, unknown)


def _retention(verdict, *, unknown: bool) -> str:
    if verdict.keep:
        return f"keep: {verdict.why}"
    return "unknown" if unknown else "expired"


def prune_now(target: Target, policy: BackupPolicy) -> list[str]:
    deleted = apply_retention(target, policy)
    if not deleted:
        return ["retention deletes nothing: every backup is kept"]
    return [f"deleted {path.name}" for path in deleted]


@dataclass
class RestoreTest:
    backup: Backup
    passed: bool = False
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = (
            f"restore test of {self.backup.path.name} (revision {self.backup.revision or 'base'})"
        )
        if self.passed:
            rows = sum(self.backup.row_counts.values())
            tables = len(self.backup.row_counts)
            return [
                f"{head}: PASSED in {self.seconds:.1f} s: sha256 verified, revision "
                f"matches, {tables} tables and {rows:,} rows as recorded"
            ]
        return [f"{head}: FAILED", *(f"  {problem}" for problem in self.problems)]


def run_restore_test(target: Target, name: str = "") -> RestoreTest:
    """Restore ``name`` (default: the newest restorable backup) into a scratch copy and verify."""
    backup = find_backup(target, name)
    result = RestoreTest(backup)
    if not backup.path.exists() or digest(backup.path) != backup.sha256:
        result.problems.append(
            "the file does not match the sha256 in its sidecar: do not rely on this backup"
        )
        return result
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=".restore-test-", dir=target.backup_dir) as directory:
        try:
            with (
                scratch_copy(target, backup, Path(directory), prefix=RESTORE_TEST_PREFIX) as copy,
                connect(copy) as connection,
            ):
                revision = alembic_ops.current(target.project, connection)
                counts = row_counts(connection)
        except Exception as exc:  # a restore that fails is exactly what this test is for
            result.problems.append(f"the restore failed: {describe(exc)}")
            return result
    result.seconds = time.monotonic() - started
    if revision != backup.revision:
        result.problems.append(
            f"the copy is at {revision or 'base'}, the sidecar says {backup.revision or 'base'}"
        )
    for table in sorted(counts.keys() | backup.row_counts.keys()):
        if counts.get(table) != backup.row_counts.get(table):
            result.problems.append(
                f"table {table}: {counts.get(table)} rows in the copy, "
                f"{backup.row_counts.get(table)} recorded"
            )
    result.passed = not result.problems
    return result


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"
