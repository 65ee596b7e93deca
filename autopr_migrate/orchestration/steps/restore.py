"""The restore as a task run."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from autopr_migrate.operations import restore
from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.store.backups import Backup
from autopr_migrate.targets.targets import Target


@task(name="restore-backup", cache_policy=NO_CACHE)
def restore_backup(
    target: Target, backup: Backup, policy: BackupPolicy, *, require_dump: bool = False
) -> restore.Restored:
    return restore.restore_backup(
        target, backup, policy, require_dump=require_dump, log=get_run_logger()
    )
