"""The upgrade: Alembic on the locked connection, with lock and statement timeouts.

A lock timeout is retried with backoff (the flow sets the count and the delays from the
policy); any other failure is not. Each revision's duration is logged, recorded and shown in
a progress artifact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from autopr.config import mask_url
from flows import alembic_ops
from flows.errors import LockTimeout, UpgradeFailed, describe
from flows.policy import LockPolicy
from flows.targets import Target

_LOCK_NOT_AVAILABLE = "55P03"


@dataclass
class UpgradeResult:
    start: str | None
    reached: str
    durations: dict[str, float] = field(default_factory=dict)


def retry_on_lock_timeout(task, task_run, state) -> bool:
    """Retry only lock timeouts (a plain function: Prefect ignores partials and callables)."""
    try:
        state.result()
    except LockTimeout:
        return True
    except Exception:
        return False
    return False


@task(name="upgrade", cache_policy=NO_CACHE, retry_condition_fn=retry_on_lock_timeout)
def apply_upgrade(
    connection: Connection, target: Target, revision: str, policy: LockPolicy
) -> UpgradeResult:
    """Upgrade to ``revision``; raise ``LockTimeout`` or ``UpgradeFailed`` on failure."""
    logger = get_run_logger()
    start = alembic_ops.current(connection)
    path = alembic_ops.pending(start, revision)
    _end_transaction(connection)
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
        with _session_timeouts(connection, policy), _alembic_logs_to(logger):
            alembic_ops.upgrade(connection, revision, on_revision=applied)
    except Exception as exc:
        _end_transaction(connection)
        failed = path[len(result.durations)] if len(result.durations) < len(path) else None
        raise _translate(exc, failed, policy) from exc
    return result


def _translate(exc: Exception, failed, policy: LockPolicy) -> UpgradeFailed:
    where = f"revision {failed.revision} ({failed.message})" if failed else "the upgrade"
    detail = describe(exc)
    if isinstance(exc, DBAPIError) and _is_lock_timeout(exc):
        return LockTimeout(
            f"{where} waited longer than lock_timeout={policy.lock_timeout_seconds:g} s for a "
            f"table lock ({detail}): another session holds a lock on that table"
        )
    return UpgradeFailed(f"{where} failed: {detail}")


def _is_lock_timeout(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "pgcode", None)
    return code == _LOCK_NOT_AVAILABLE or "database is locked" in str(exc.orig)


@contextmanager
def _session_timeouts(connection: Connection, policy: LockPolicy) -> Iterator[None]:
    lock_ms = int(policy.lock_timeout_seconds * 1000)
    if connection.dialect.name == "postgresql":
        statement_ms = int(policy.statement_timeout_seconds * 1000)
        connection.exec_driver_sql(f"SET lock_timeout = {lock_ms}")
        connection.exec_driver_sql(f"SET statement_timeout = {statement_ms}")
        reset = ("RESET lock_timeout", "RESET statement_timeout")
    else:
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {lock_ms}")
        reset = ()
    connection.commit()
    try:
        yield
    finally:
        _end_transaction(connection)
        for statement in reset:
            connection.exec_driver_sql(statement)
        connection.commit()


@contextmanager
def _alembic_logs_to(logger: logging.LoggerAdapter) -> Iterator[None]:
    """Show Alembic's own lines ("Running upgrade a -> b") in the run's logs."""

    class Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logger.log(record.levelno, "%s", mask_url(record.getMessage()))

    handler = Forward(level=logging.INFO)
    source = logging.getLogger("alembic.runtime.migration")
    previous = source.level
    source.addHandler(handler)
    source.setLevel(logging.INFO)
    try:
        yield
    finally:
        source.removeHandler(handler)
        source.setLevel(previous)


def _end_transaction(connection: Connection) -> None:
    if connection.in_transaction():
        connection.rollback()
