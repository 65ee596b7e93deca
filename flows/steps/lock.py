"""The migration lock, in two layers.

1. A Prefect global concurrency limit ``migrate-<target>`` (limit 1), held from preflight to
   the report, so the plan that was approved is exactly what runs and a second run waits or
   fails clearly. (A deployment's own concurrency limit is released while a run is paused.)
2. On the connection that migrates: a PostgreSQL advisory lock, which plain ``alembic`` takes
   too; on SQLite an exclusive lock file beside the database.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress

from prefect import get_client
from prefect.concurrency.sync import concurrency
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, PendingRollbackError, SQLAlchemyError

from autopr.database.migration_lock import (
    MIGRATION_LOCK_KEY,
    hold_lock_file,
    release_advisory_lock,
    try_advisory_lock,
)
from flows.database import connect
from flows.errors import LockUnavailable, MigrationError
from flows.policy import MigrationPolicy
from flows.steps import ledger
from flows.steps.preflight import refuse_unfinished_runs
from flows.targets import Target

LEASE_SECONDS = 60
DEAD_HOLDER_RECHECK_SECONDS = 1


def limit_name(target: Target) -> str:
    return f"migrate-{target.name}"


def ensure_limit(target: Target) -> str:
    """Create the target's concurrency limit if it does not exist (idempotent)."""
    name = limit_name(target)
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    return name


@contextmanager
def run_lock(target: Target, *, wait_seconds: float) -> Iterator[None]:
    """Hold ``migrate-<target>``; raise ``LockUnavailable`` after ``wait_seconds``.

    A lease that cannot be renewed (the Prefect API away for a while) must not cancel a run in
    the middle of an upgrade: the database-side lock is what keeps migrations apart there. The
    lease is short (the server's minimum), so the slot of a run killed with SIGKILL comes back
    within about a minute where the server's repossessor runs; ``resolve`` frees it at once.
    A run left dead (its ledger row still ``running``, the database lock free) is refused at
    once with the instructions to resolve it, rather than waited for.
    """
    name = ensure_limit(target)
    if _holder_looks_dead(target):
        time.sleep(DEAD_HOLDER_RECHECK_SECONDS)  # not a live run closing its row just now
        if _holder_looks_dead(target):
            refuse_crashed_holder(target)
    with ExitStack() as stack:
        try:
            stack.enter_context(concurrency(
                name, occupy=1, timeout_seconds=max(wait_seconds, 0.1), strict=True,
                lease_duration=LEASE_SECONDS, raise_on_lease_renewal_failure=False,
            ))  # fmt: skip
        except TimeoutError:
            raise LockUnavailable(
                f"another run is migrating target {target.name!r} (it holds the concurrency "
                f"limit {name}); waited {wait_seconds:g} s. Let it finish, or raise "
                f"policy.lock.wait_seconds"
            ) from None
        yield


def _holder_looks_dead(target: Target) -> bool:
    """A run past its backup holds the database lock until it has closed its ledger row."""
    try:
        with connect(target) as connection:
            if not ledger.unfinished(connection):
                return False
            connection.rollback()
            if connection.dialect.name == "postgresql":
                if not try_advisory_lock(connection):
                    return False
                release_advisory_lock(connection)
                return True
        with hold_lock_file(target.url.database or "", wait_seconds=0):
            return True
    except (TimeoutError, MigrationError, DBAPIError):
        return False


def refuse_crashed_holder(target: Target) -> None:
    with connect(target) as connection:
        refuse_unfinished_runs(connection, target)


@contextmanager
def database_lock(connection: Connection, target: Target, *, wait_seconds: float) -> Iterator[None]:
    """Hold the database-side lock on ``connection`` for as long as the block runs."""
    if connection.dialect.name == "postgresql":
        with _advisory_lock(connection, target, wait_seconds=wait_seconds):
            yield
        return
    with _lock_file(target, wait_seconds=wait_seconds):
        yield


@contextmanager
def _advisory_lock(
    connection: Connection, target: Target, *, wait_seconds: float
) -> Iterator[None]:
    deadline = time.monotonic() + wait_seconds
    while not try_advisory_lock(connection):
        if time.monotonic() >= deadline:
            holder = _advisory_lock_holder(connection)
            raise LockUnavailable(
                f"another session holds the migration lock of target {target.name!r}{holder} "
                f"(a plain `alembic` run or another tool); waited {wait_seconds:g} s"
            )
        time.sleep(0.5)
    try:
        yield
    finally:
        # A dead session released its locks with it; never hide the real error behind this.
        with suppress(SQLAlchemyError):
            release_advisory_lock(connection)


def ensure_locked(connection: Connection, target: Target) -> None:
    """Before undoing anything: make sure this session still holds the database lock.

    SQLAlchemy reconnects a connection whose session died, silently; the new session holds no
    advisory lock and none of the timeouts.

    Raises:
        LockUnavailable: the lock was lost and another session holds it now.
    """
    if connection.dialect.name != "postgresql":
        return
    try:
        _hold_again(connection, target)
    except (DBAPIError, PendingRollbackError) as exc:
        # PendingRollbackError: the session died under an earlier statement, not this one.
        if isinstance(exc, DBAPIError) and not exc.connection_invalidated:
            raise
        connection.rollback()  # clears the dead session; the next statement opens a new one
        _hold_again(connection, target)


def _hold_again(connection: Connection, target: Target) -> None:
    held = connection.scalar(
        text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = :key"
        ),
        {"key": MIGRATION_LOCK_KEY},
    )
    connection.commit()
    if not held and not try_advisory_lock(connection):
        raise LockUnavailable(
            f"the migrating session of target {target.name!r} was lost, and another session "
            f"took the migration lock{_advisory_lock_holder(connection)}"
        )


def _advisory_lock_holder(connection: Connection) -> str:
    row = connection.execute(
        text(
            "SELECT a.pid, a.application_name, a.client_addr FROM pg_locks l "
            "JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND ((l.classid::bigint << 32) | l.objid::bigint) = :key"
        ),
        {"key": MIGRATION_LOCK_KEY},
    ).first()
    connection.commit()
    if row is None:
        return ""
    return f" (pid {row.pid}, {row.application_name or 'no application name'})"


@contextmanager
def _lock_file(target: Target, *, wait_seconds: float) -> Iterator[None]:
    try:
        with hold_lock_file(target.url.database or "", wait_seconds=wait_seconds):
            yield
    except TimeoutError as exc:
        raise LockUnavailable(
            f"another process holds the migration lock file {exc} of target {target.name!r}; "
            f"waited {wait_seconds:g} s"
        ) from None


def lock_retries(policy: MigrationPolicy) -> dict:
    """Task options: retry a step that hit ``lock_timeout``, with a doubling delay."""
    lock = policy.lock
    delays = [lock.retry_backoff_seconds * 2**attempt for attempt in range(lock.lock_retries)]
    return {"retries": lock.lock_retries, "retry_delay_seconds": delays or 0}
