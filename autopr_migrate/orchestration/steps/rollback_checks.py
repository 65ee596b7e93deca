"""Preflight for going back, as a task run."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from autopr_migrate.operations import preflight as checks
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.targets.targets import Target


@task(name="rollback-preflight", cache_policy=NO_CACHE)
def downgrade_preflight(
    target: Target, revision: str, *, confirm_base: bool, policy: MigrationPolicy
) -> checks.PreflightReport:
    return checks.downgrade_preflight(
        target, revision, confirm_base=confirm_base, policy=policy, log=get_run_logger()
    )
