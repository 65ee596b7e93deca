"""The upgrade as a task run: retried on a lock timeout, with a progress artifact, and watched
for what the application feels (PostgreSQL).

The flow sets the retry count and delays from the policy (``lock_retries``); any failure other
than a lock timeout is not retried. While the upgrade runs, the lock sampler watches the
application's queries; with ``impact.cancel_queued`` it cancels our statement while it is still
queued for its lock once an application query has waited ``impact.max_wait_ms`` behind it, and
that attempt counts as a lock timeout.
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

from autopr_migrate.backends.lock_sampler import LockSampler, Observed
from autopr_migrate.backends.session import retry_on_lock_timeout
from autopr_migrate.errors import LockTimeout, UpgradeFailed
from autopr_migrate.masking import mask_secrets
from autopr_migrate.operations import upgrade
from autopr_migrate.ops.progress import listening
from autopr_migrate.policy.parameters import ImpactPolicy, LockPolicy
from autopr_migrate.targets.targets import Target

_CANCELLED = "57014"  # query_canceled


class UpgradeWatch:
    """What the application felt over every attempt of the upgrade."""

    def __init__(self, policy: ImpactPolicy) -> None:
        self.policy = policy
        self.attempts: list[Observed] = []

    def summary(self) -> dict:
        waits = [
            wait
            for observed in self.attempts
            for wait in observed.behind_migration().waits.values()
        ]
        return {
            "queries_waited": len(waits),
            "longest_wait_ms": round(max((w.seconds for w in waits), default=0.0) * 1000),
            "blocked_seconds": round(sum(w.seconds for w in waits), 2),
            "statements_cancelled": sum(len(o.cancelled) for o in self.attempts),
        }


@task(name="upgrade", cache_policy=NO_CACHE, retry_condition_fn=retry_on_lock_timeout)
def apply_upgrade(
    connection: Connection,
    target: Target,
    revision: str,
    policy: LockPolicy,
    watch: UpgradeWatch | None = None,
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

    backfills: dict[str, object] = {}

    def show_backfill(what: str, done: int, total: int) -> None:
        """A backfill's rows, as the progress artifact ``backfill-progress-<target>``."""
        description = f"{what}: {done:,} of about {total:,} rows"
        share = 100.0 * done / max(total, 1)
        if what not in backfills:
            key = f"backfill-progress-{target.name}"
            backfills[what] = create_progress_artifact(share, key=key, description=description)
        else:
            update_progress_artifact(backfills[what], share, description=description)

    with (
        _watched(target, connection, watch or UpgradeWatch(ImpactPolicy())) as observed,
        listening(show_backfill),
    ):
        try:
            return upgrade.apply_upgrade(
                target.project, connection, revision, policy, log=get_run_logger(), on_progress=show
            )
        except UpgradeFailed as exc:
            if isinstance(exc, LockTimeout) or not (observed.cancelled and _cancelled(exc)):
                raise
            cancel = observed.cancelled[-1]
            raise LockTimeout(
                f"our statement was cancelled while it waited for its lock, because an "
                f"application query had waited {cancel.waited * 1000:.0f} ms behind it "
                f"(policy.impact.max_wait_ms): {mask_secrets(' '.join(cancel.query.split()))[:80]}"
            ) from exc


def _cancelled(exc: BaseException) -> bool:
    """The upgrade failed because its statement was cancelled (SQLSTATE 57014)."""
    while exc is not None:
        inner = getattr(exc, "orig", None) or exc
        if (getattr(inner, "pgcode", None) or getattr(inner, "sqlstate", None)) == _CANCELLED:
            return True
        exc = exc.__cause__
    return False


@contextmanager
def _watched(target: Target, connection: Connection, watch: UpgradeWatch) -> Iterator[Observed]:
    """What the application felt during the upgrade (PostgreSQL): its queries that waited for
    a lock behind the migration, as the artifact ``migration-impact-<target>`` and a log line."""
    if target.dialect != "postgresql":
        yield Observed()
        return
    policy = watch.policy
    migrating = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    connection.rollback()
    sampler = LockSampler(
        target.url,
        interval=0.1,
        watched=migrating,
        cancel_after=policy.max_wait_ms / 1000 if policy.cancel_queued else None,
    )
    try:
        with sampler:
            yield sampler.observed
    finally:
        watch.attempts.append(sampler.observed)
        _publish_impact(target, sampler.observed)


def _publish_impact(target: Target, everything: Observed) -> None:
    observed = everything.behind_migration()
    waits = sorted(observed.waits.values(), key=lambda wait: -wait.seconds)
    logger = get_run_logger()
    for cancel in observed.cancelled:
        logger.warning(
            "cancelled our statement while it was queued for its lock: an application query "
            "had waited %.2f s behind it: %s",
            cancel.waited,
            mask_secrets(" ".join(cancel.query.split()))[:80],
        )
    logger.info(
        "application during the upgrade: %d quer%s waited for a lock behind the migration, "
        "the longest %.2f s, %.2f s in all",
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
        f"{observed.blocked_seconds:.2f} s in all, {len(observed.cancelled)} statement(s) "
        f"cancelled",
    )
