"""The health probe as a task run: the UI shows each probe, and its log lines."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from autopr_migrate.operations import probe
from autopr_migrate.policy.parameters import ProbePolicy
from autopr_migrate.targets.targets import Target


@task(name="probe-health", cache_policy=NO_CACHE)
def probe_health(
    target: Target,
    expected_revision: str | None,
    policy: ProbePolicy,
    *,
    application_expected: bool = True,
) -> probe.ProbeResult:
    return probe.probe_health(
        target,
        expected_revision,
        policy,
        application_expected=application_expected,
        log=get_run_logger(),
    )
