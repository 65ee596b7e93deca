"""The rehearsal as a task run."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from autopr_migrate.operations.preflight import PreflightReport
from autopr_migrate.operations.rehearse import Rehearsal
from autopr_migrate.operations.rehearse import rehearse as rehearse_on_a_copy
from autopr_migrate.policy.parameters import RehearsalPolicy
from autopr_migrate.targets.targets import Target


@task(name="rehearse", cache_policy=NO_CACHE)
def rehearse(target: Target, checks: PreflightReport, policy: RehearsalPolicy) -> Rehearsal:
    return rehearse_on_a_copy(target, checks, policy, log=get_run_logger())
