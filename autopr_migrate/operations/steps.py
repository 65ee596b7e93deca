"""The steps a change is made of, behind one seam: how each runs is the caller's choice.

A flow runs every step as a Prefect task run (the UI shows it, with its logs, retries and
artifacts: ``orchestration.task_steps``); the command line and tests run them as plain calls
(``DirectSteps``). The sequences in ``guarded_change`` and ``recovery`` are written once against
``Steps``.
"""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy import Connection

from autopr_migrate.operations import backup, downgrade, probe, restore, upgrade
from autopr_migrate.policy.parameters import BackupPolicy, MigrationPolicy, ProbePolicy
from autopr_migrate.store.backups import Backup
from autopr_migrate.targets.targets import Target

LOG = logging.getLogger(__name__)


class Steps(Protocol):
    def backup(
        self, target: Target, policy: BackupPolicy, *, label: str, database_bytes: int
    ) -> Backup: ...

    def upgrade(
        self, connection: Connection, target: Target, goal: str, policy: MigrationPolicy
    ) -> upgrade.UpgradeResult: ...

    def downgrade(
        self, connection: Connection, target: Target, revision: str | None, policy: MigrationPolicy
    ) -> None: ...

    def probe(
        self,
        target: Target,
        revision: str | None,
        policy: ProbePolicy,
        *,
        application_expected: bool = True,
        after: str = "",
    ) -> probe.ProbeResult:
        """``after`` names what the probe follows ("downgrade", "restore"), for the run's UI."""
        ...

    def restore(
        self, target: Target, backup: Backup, policy: BackupPolicy, *, require_dump: bool
    ) -> restore.Restored: ...

    def drop_invalid_indexes(self, target: Target, names: set[str]) -> list[str]: ...


class DirectSteps:
    """Each step a plain call, logging to ``log``; a lock timeout is not retried."""

    def __init__(self, log: logging.Logger | logging.LoggerAdapter = LOG) -> None:
        self.log = log

    def backup(
        self, target: Target, policy: BackupPolicy, *, label: str, database_bytes: int
    ) -> Backup:
        return backup.take_backup(
            target, policy, label=label, database_bytes=database_bytes, log=self.log
        )

    def upgrade(
        self, connection: Connection, target: Target, goal: str, policy: MigrationPolicy
    ) -> upgrade.UpgradeResult:
        return upgrade.apply_upgrade(target.project, connection, goal, policy.lock, log=self.log)

    def downgrade(
        self, connection: Connection, target: Target, revision: str | None, policy: MigrationPolicy
    ) -> None:
        downgrade.downgrade_to(target.project, connection, revision, policy.lock, log=self.log)

    def probe(
        self,
        target: Target,
        revision: str | None,
        policy: ProbePolicy,
        *,
        application_expected: bool = True,
        after: str = "",
    ) -> probe.ProbeResult:
        return probe.probe_health(
            target, revision, policy, application_expected=application_expected, log=self.log
        )

    def restore(
        self, target: Target, backup: Backup, policy: BackupPolicy, *, require_dump: bool
    ) -> restore.Restored:
        return restore.restore_backup(
            target, backup, policy, require_dump=require_dump, log=self.log
        )

    def drop_invalid_indexes(self, target: Target, names: set[str]) -> list[str]:
        return downgrade.drop_invalid_indexes(target, names, log=self.log)
