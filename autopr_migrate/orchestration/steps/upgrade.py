"""The upgrade as a task run: retried on a lock timeout, with a progress artifact.

The flow sets the retry count and delays from the policy (``lock_retries``); any failure other
than a lock timeout is not retried.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Connection

from autopr_migrate.backends.session import retry_on_lock_timeout
from autopr_migrate.operations import upgrade
from autopr_migrate.policy.parameters import LockPolicy
from autopr_migrate.targets.targets import Target


@task(name="upgrade", cache_policy=NO_CACHE, retry_condition_fn=retry_on_lock_timeout)
def apply_upgrade(
    connection: Connection, target: Target, revision: str, policy: LockPolicy
) -> upgrade.UpgradeResult:
    progress = []

    def show(done: int, total: int) -> None:
        description = f"{done}/{total} revisions"
        if not progress:
            key = f"migration-progress-{target.name}"
            progress.append(create_progress_artifact(0.0, key=key, description=description))
        else:
            update_progress_artifact(
                progress[0], 100.0 * done / max(total, 1), description=description
            )

    return upgrade.apply_upgrade(
        target.project, connection, revision, policy, log=get_run_logger(), on_progress=show
    )
