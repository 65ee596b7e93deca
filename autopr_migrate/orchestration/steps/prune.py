"""After a successful migration: let retention delete the backups nobody needs any more."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from autopr_migrate.errors import describe
from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.store.retention import apply_retention
from autopr_migrate.targets.targets import Target


@task(name="prune-backups", cache_policy=NO_CACHE)
def prune_backups(target: Target, policy: BackupPolicy) -> list[str]:
    """Apply the retention policy; a failure here is logged, never fails the migration."""
    logger = get_run_logger()
    try:
        deleted = apply_retention(target, policy)
    except Exception as exc:  # the migration succeeded; pruning can wait for the next run
        logger.warning("backup retention was not applied to %s: %s", target.name, describe(exc))
        return []
    if deleted:
        logger.info(
            "retention deleted %d old backup(s) of %s: %s",
            len(deleted),
            target.name,
            ", ".join(path.name for path in deleted),
        )
    return [path.name for path in deleted]
