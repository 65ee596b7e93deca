"""The upgrade: Alembic on the locked connection, with lock and statement timeouts.

A lock timeout is retried with backoff (the flow sets the count and the delays from the
policy); any other failure is not. Each revision's duration is logged, recorded and shown in
a progress artifact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Connection

from autopr_migrate.backends.session import (
    alembic_logs_to,
    end_transaction,
    is_lock_timeout,
    retry_on_lock_timeout,
    timeouts,
)
from autopr_migrate.errors import LockTimeout, UpgradeFailed, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.policy.parameters import LockPolicy
from autopr_migrate.targets.targets import Target


@dataclass
class UpgradeResult:
    start: str | None
    reached: str
    durations: dict[str, float] = field(default_factory=dict)


@task(name="upgrade", cache_policy=NO_CACHE, retry_condition_fn=retry_on_lock_timeout)
def apply_upgrade(
    connection: Connection, target: Target, revision: str, policy: LockPolicy
) -> UpgradeResult:
    """Upgrade to ``revision``; raise ``LockTimeout`` or ``UpgradeFailed`` on failure."""
    logger = get_run_logger()
    start = alembic_ops.current(connection)
    path = alembic_ops.pending(start, revision)
    end_transaction(connection)
    result = UpgradeResult(start, revision)
    progress = create_progress_artifact(
        0.0, key=f"migration-progress-{target.name}", description=f"0/{len(path)} revisions"
    )
    clock = [time.monotonic()]

    def applied(rev: str, doc: str, _upgrade: bool) -> None:
        now = time.monotonic()
        result.durations[rev] = round(now - clock[0], 3)
        clock[0] = now
        done = len(result.durations)
        logger.info(
            "applied %d/%d: %s %s (%.2f s)", done, len(path), rev, doc, result.durations[rev]
        )
        update_progress_artifact(
            progress, 100.0 * done / max(len(path), 1), description=f"{done}/{len(path)} revisions"
        )

    logger.info("upgrading %s -> %s: %d revision(s)", start or "base", revision, len(path))
    try:
        with timeouts(connection, policy), alembic_logs_to(logger):
            alembic_ops.upgrade(connection, revision, on_revision=applied)
    except Exception as exc:
        end_transaction(connection)
        failed = path[len(result.durations)] if len(result.durations) < len(path) else None
        raise _translate(exc, failed, policy) from exc
    return result


def _translate(exc: Exception, failed, policy: LockPolicy) -> UpgradeFailed:
    where = f"revision {failed.revision} ({failed.message})" if failed else "the upgrade"
    detail = describe(exc)
    if is_lock_timeout(exc):
        return LockTimeout(
            f"{where} waited longer than lock_timeout={policy.lock_timeout_seconds:g} s for a "
            f"table lock ({detail}): another session holds a lock on that table"
        )
    return UpgradeFailed(f"{where} failed: {detail}")
