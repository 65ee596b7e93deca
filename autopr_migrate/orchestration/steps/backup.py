"""The backup as a task run."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from autopr_migrate.operations import backup
from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.store.backups import Backup
from autopr_migrate.targets.targets import Target


@task(name="take-backup", cache_policy=NO_CACHE)
def take_backup(
    target: Target, policy: BackupPolicy, *, label: str = "pre-upgrade", database_bytes: int = 0
) -> Backup:
    return backup.take_backup(
        target, policy, label=label, database_bytes=database_bytes, log=get_run_logger()
    )
