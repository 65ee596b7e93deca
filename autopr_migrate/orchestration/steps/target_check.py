"""The daily check of a target as a task run."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from autopr_migrate.operations import target_check
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.targets.targets import Target


@task(name="check-target", cache_policy=NO_CACHE)
def check_target(target: Target, policy: MigrationPolicy) -> target_check.TargetCheck:
    return target_check.check_target(target, policy)
