"""The upgrade: Alembic on the locked connection, with lock and statement timeouts.

Each revision's duration is logged, recorded and reported to ``on_progress`` (done, total). A
lock timeout raises ``LockTimeout``, which the caller may retry; any other failure raises
``UpgradeFailed`` naming the revision.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from autopr_migrate.backends.session import (
    alembic_logs_to,
    end_transaction,
    inherited_settings,
    is_lock_timeout,
    timeouts,
)
from autopr_migrate.errors import LockTimeout, UpgradeFailed, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.operations.queue_guard import no_queue_behind_long_transactions
from autopr_migrate.policy.parameters import LockPolicy
from autopr_migrate.targets.project import Project

LOG = logging.getLogger(__name__)


@dataclass
class UpgradeResult:
    start: str | None
    reached: str
    durations: dict[str, float] = field(default_factory=dict)


def apply_upgrade(
    project: Project,
    connection: Connection,
    revision: str,
    policy: LockPolicy,
    *,
    log: logging.Logger | logging.LoggerAdapter = LOG,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> UpgradeResult:
    """Upgrade to ``revision``; raise ``LockTimeout`` or ``UpgradeFailed`` on failure."""
    start = alembic_ops.current(project, connection)
    path = alembic_ops.pending(project, start, revision)
    end_transaction(connection)
    result = UpgradeResult(start, revision)
    on_progress(0, len(path))
    clock = [time.monotonic()]

    def applied(rev: str, doc: str, _upgrade: bool) -> None:
        now = time.monotonic()
        result.durations[rev] = round(now - clock[0], 3)
        clock[0] = now
        done = len(result.durations)
        log.info("applied %d/%d: %s %s (%.2f s)", done, len(path), rev, doc, result.durations[rev])
        on_progress(done, len(path))

    log.info("upgrading %s -> %s: %d revision(s)", start or "base", revision, len(path))
    try:
        with (
            timeouts(connection, policy),
            alembic_logs_to(log),
            no_queue_behind_long_transactions(policy),
        ):
            alembic_ops.upgrade(
                project,
                connection,
                revision,
                on_revision=applied,
                session=inherited_settings(policy),
            )
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
