"""The upgrade as a task run: retried on a lock timeout, with a progress artifact, and watched
for what the application feels (PostgreSQL).

The flow sets the retry count and delays from the policy (``lock_retries``); any failure other
than a lock timeout is not retried.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Connection

from autopr_migrate.backends.lock_sampler import MIGRATING_APPLICATION, LockSampler, Observed
from autopr_migrate.backends.session import retry_on_lock_timeout
from autopr_migrate.masking import mask_secrets
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

    with _watched(target):
        return upgrade.apply_upgrade(
            target.project, connection, revision, policy, log=get_run_logger(), on_progress=show
        )


@contextmanager
def _watched(target: Target) -> Iterator[None]:
    """What the application felt during the upgrade (PostgreSQL): its queries that waited for
    a lock, as the artifact ``migration-impact-<target>`` and a log line."""
    if target.dialect != "postgresql":
        yield
        return
    sampler = LockSampler(target.url, interval=0.1, ignored_application=MIGRATING_APPLICATION)
    try:
        with sampler:
            yield
    finally:
        _publish_impact(target, sampler.observed)


def _publish_impact(target: Target, observed: Observed) -> None:
    waits = sorted(observed.waits.values(), key=lambda wait: -wait.seconds)
    get_run_logger().info(
        "application during the upgrade: %d quer%s waited for a lock, the longest %.2f s, "
        "%.2f s in all",
        len(waits),
        "y" if len(waits) == 1 else "ies",
        observed.longest_wait,
        observed.blocked_seconds,
    )
    create_table_artifact(
        table=[
            {
                "waited s": round(wait.seconds, 2),
                "query": mask_secrets(wait.query)[:60],
                "behind pids": ", ".join(map(str, sorted(wait.blocked_by))),
            }
            for wait in waits[:20]
        ]
        or [{"waited s": 0, "query": "no application query waited for a lock"}],
        key=f"migration-impact-{target.name}",
        description=f"longest application wait {observed.longest_wait:.2f} s, "
        f"{observed.blocked_seconds:.2f} s in all",
    )
