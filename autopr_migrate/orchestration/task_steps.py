"""The steps as Prefect task runs: the UI shows each one, with its logs and artifacts."""

from __future__ import annotations

from sqlalchemy import Connection

from autopr_migrate.operations.probe import ProbeResult
from autopr_migrate.operations.restore import Restored
from autopr_migrate.operations.upgrade import UpgradeResult
from autopr_migrate.orchestration.steps.backup import take_backup
from autopr_migrate.orchestration.steps.downgrade import downgrade_to, drop_invalid_indexes
from autopr_migrate.orchestration.steps.lock import lock_retries
from autopr_migrate.orchestration.steps.probe import probe_health
from autopr_migrate.orchestration.steps.report import Report
from autopr_migrate.orchestration.steps.restore import restore_backup
from autopr_migrate.orchestration.steps.upgrade import UpgradeWatch, apply_upgrade
from autopr_migrate.policy.parameters import BackupPolicy, MigrationPolicy, ProbePolicy
from autopr_migrate.store.backups import Backup
from autopr_migrate.targets.targets import Target


class TaskSteps:
    """Lock timeouts of the upgrade and the downgrade are retried as the policy says; ``watch``
    holds what the application felt during the upgrade."""

    def __init__(self) -> None:
        self.watch: UpgradeWatch | None = None

    def record_impact(self, report: Report, target: Target) -> None:
        """What the application felt during the upgrade, for the run's report and ledger."""
        if self.watch is not None and target.dialect == "postgresql":
            report.impact["upgrade"] = self.watch.summary()

    def backup(
        self, target: Target, policy: BackupPolicy, *, label: str, database_bytes: int
    ) -> Backup:
        return take_backup(target, policy, label=label, database_bytes=database_bytes)

    def upgrade(
        self, connection: Connection, target: Target, goal: str, policy: MigrationPolicy
    ) -> UpgradeResult:
        self.watch = UpgradeWatch(policy.impact)
        return apply_upgrade.with_options(**lock_retries(policy))(
            connection, target, goal, policy.lock, self.watch
        )

    def downgrade(
        self, connection: Connection, target: Target, revision: str | None, policy: MigrationPolicy
    ) -> None:
        downgrade_to.with_options(**lock_retries(policy))(connection, target, revision, policy.lock)

    def probe(
        self,
        target: Target,
        revision: str | None,
        policy: ProbePolicy,
        *,
        application_expected: bool = True,
        after: str = "",
    ) -> ProbeResult:
        task = (
            probe_health.with_options(name=f"probe-health-after-{after}")
            if after
            else (probe_health)
        )
        return task(target, revision, policy, application_expected=application_expected)

    def restore(
        self, target: Target, backup: Backup, policy: BackupPolicy, *, require_dump: bool
    ) -> Restored:
        return restore_backup(target, backup, policy, require_dump=require_dump)

    def drop_invalid_indexes(self, target: Target, names: set[str]) -> list[str]:
        return drop_invalid_indexes(target, names)
