"""Backup retention: which backups may go, and which must stay whatever the policy says.

A backup goes only when it is beyond the newest ``keep_last`` *and* older than ``keep_days``.
Whatever the numbers, these stay: the backup of the newest successful run (the one a rollback
would reach for first), every backup a ``running`` ledger row names (a crashed run may need
it), and those of runs that failed since the last success. When the ledger cannot be read,
nothing is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from autopr_migrate.backends.connections import connect
from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.store import ledger
from autopr_migrate.store.backups import remove_backup
from autopr_migrate.store.catalog import Listed, list_backups
from autopr_migrate.targets.targets import Target


@dataclass(frozen=True)
class Verdict:
    item: Listed
    keep: bool
    why: str


def protected_backups(target: Target) -> dict[str, str]:
    """``{backup file name: why}`` for the backups the ledger still needs."""
    with connect(target) as connection:
        if not ledger.exists(connection):
            return {}
        table = ledger.ledger
        rows = connection.execute(
            select(table.c.id, table.c.status, table.c.backup_path)
            .where(table.c.backup_path.is_not(None))
            .order_by(table.c.id)
        ).all()
    protected: dict[str, str] = {}
    succeeded = [row for row in rows if row.status == ledger.SUCCEEDED]
    last_success = succeeded[-1].id if succeeded else 0
    if succeeded:
        protected[Path(succeeded[-1].backup_path).name] = (
            f"the newest successful run's (ledger row {last_success})"
        )
    for row in rows:
        if row.status == ledger.RUNNING:
            protected[Path(row.backup_path).name] = f"ledger row {row.id} is still running"
        elif row.status == ledger.FAILED and row.id > last_success:
            # A failure since the last success may have left the database needing this one.
            protected[Path(row.backup_path).name] = f"ledger row {row.id} failed since"
    return protected


def judge(
    target: Target,
    policy: BackupPolicy,
    *,
    now: datetime | None = None,
    protected: dict[str, str] | None = None,
) -> list[Verdict]:
    """Every backup of ``target``, newest first, with whether retention keeps it and why.

    ``protected`` defaults to what the target's ledger protects (which needs the database).
    """
    now = now or datetime.now(UTC)
    protected = protected_backups(target) if protected is None else protected
    newest_first = list(reversed(list_backups(target)))
    verdicts = []
    for rank, item in enumerate(newest_first):
        name = item.backup.path.name
        young = policy.keep_days and now - item.created < timedelta(days=policy.keep_days)
        if name in protected:
            verdicts.append(Verdict(item, True, protected[name]))
        elif rank < policy.keep_last:
            verdicts.append(Verdict(item, True, f"among the newest {policy.keep_last}"))
        elif young:
            verdicts.append(Verdict(item, True, f"younger than {policy.keep_days:g} days"))
        else:
            verdicts.append(Verdict(item, False, "beyond keep_last and keep_days"))
    return verdicts


def apply_retention(target: Target, policy: BackupPolicy) -> list[Path]:
    """Delete the backups retention lets go; return their paths."""
    deleted = []
    for verdict in judge(target, policy):
        if not verdict.keep:
            remove_backup(verdict.item.backup)
            deleted.append(verdict.item.backup.path)
    return deleted
