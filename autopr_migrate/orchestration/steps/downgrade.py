"""The downgrade, and dropping what a failed concurrent build left, as task runs."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Connection

from autopr_migrate.backends.session import retry_on_lock_timeout
from autopr_migrate.operations import downgrade
from autopr_migrate.policy.parameters import LockPolicy
from autopr_migrate.targets.targets import Target


@task(name="downgrade", cache_policy=NO_CACHE, retry_condition_fn=retry_on_lock_timeout)
def downgrade_to(
    connection: Connection, target: Target, revision: str | None, policy: LockPolicy
) -> None:
    downgrade.downgrade_to(target.project, connection, revision, policy, log=get_run_logger())


@task(name="drop-invalid-indexes", cache_policy=NO_CACHE)
def drop_invalid_indexes(target: Target, names: set[str]) -> list[str]:
    return downgrade.drop_invalid_indexes(target, names, log=get_run_logger())
