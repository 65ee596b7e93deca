"""The migration lock, in two layers, both held from planning to the report.

1. A Prefect global concurrency limit ``migrate-<target>`` (limit 1), so a second run waits or
   fails clearly in the UI. (A deployment's own concurrency limit is released while a run is
   paused.)
2. The database's own lock, on the connection that migrates: a PostgreSQL session-level
   advisory lock, which plain ``alembic`` takes too; on SQLite an exclusive lock file beside the
   database. It is taken right after the Prefect slot and kept through the approval pause, so
   the database itself keeps a second run and a plain ``alembic upgrade`` out even when
   Prefect's lease lapses (a stalled process, an API outage, an operator freeing the slot).

Right before the backup and again before the upgrade, ``MigrationLocks.verify`` proves both
are still this run's; when one is not, the run stops with nothing changed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from uuid import UUID

import httpx
from prefect import get_client, get_run_logger
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency._leases import maintain_concurrency_lease
from prefect.concurrency._sync import (
    acquire_concurrency_slots_with_lease,
    release_concurrency_slots_with_lease,
)
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from autopr_migrate.backends.connections import connect
from autopr_migrate.backends.dialects import DatabaseLock
from autopr_migrate.backends.registry import backend_for
from autopr_migrate.errors import LockLost, LockUnavailable, MigrationError, describe
from autopr_migrate.operations.preflight import refuse_unfinished_runs
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.store import ledger
from autopr_migrate.targets.targets import Target

LEASE_SECONDS = 60  # the server's minimum: a killed run's slot comes back within a minute
DEAD_HOLDER_RECHECK_SECONDS = 1
RETAKE_SECONDS = 5  # a free slot's request can take seconds to be answered on a busy API


def limit_name(target: Target) -> str:
    return f"migrate-{target.name}"


def ensure_limit(target: Target) -> str:
    """Create the target's concurrency limit if it does not exist (idempotent).

    Two runs starting at once on a target nobody set up both find no limit and both create it
    (Prefect's upsert is not atomic): the one that loses finds the limit made, which is fine.
    """
    name = limit_name(target)
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(name, 1)
        except ObjectAlreadyExists:
            client.upsert_global_concurrency_limit_by_name(name, 1)  # now it is an update
    return name


class PrefectSlot:
    """This run's slot in ``migrate-<target>``, under a lease it can prove is still its own.

    A lease that cannot be renewed (the Prefect API away for a while) must not cancel a run in
    the middle of an upgrade: the database lock keeps migrations apart there.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.name = limit_name(target)
        self.lease_id: UUID | None = None
        self._renewal = ExitStack()

    def acquire(self, *, wait_seconds: float) -> None:
        """Raises ``LockUnavailable`` when another run holds the slot for ``wait_seconds``."""
        run = FlowRunContext.get()
        holder = (
            ConcurrencyLeaseHolder(type="flow_run", id=run.flow_run.id)
            if (run and run.flow_run)
            else None
        )
        try:
            response = acquire_concurrency_slots_with_lease(
                [self.name],
                1,
                timeout_seconds=max(wait_seconds, 0.1),
                strict=True,
                lease_duration=LEASE_SECONDS,
                holder=holder,
                suppress_warnings=True,
            )
        except TimeoutError:
            raise LockUnavailable(
                f"another run is migrating target {self.target.name!r} (it holds the "
                f"concurrency limit {self.name}); waited {wait_seconds:g} s. Let it finish, or "
                f"raise policy.lock.wait_seconds"
            ) from None
        self.lease_id = response.lease_id
        get_run_logger().info(
            "holding the concurrency limit %s (lease %s)", self.name, response.lease_id
        )
        self._renewal.enter_context(
            maintain_concurrency_lease(
                response.lease_id,
                LEASE_SECONDS,
                raise_on_lease_renewal_failure=False,
                suppress_warnings=True,
            )
        )

    def still_held(self) -> bool:
        """Renew the lease now: the server answers 410 Gone for a lease it no longer has.

        Raises:
            LockLost: the Prefect API does not answer, so the lease cannot be proven.
        """
        if self.lease_id is None:
            return False
        try:
            with get_client(sync_client=True) as client:
                client.renew_concurrency_lease(self.lease_id, LEASE_SECONDS)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code in (404, 410):
                return False
            raise
        except httpx.TransportError as exc:
            raise LockLost(
                f"the Prefect API did not answer ({describe(exc)[:200]}), so this run cannot "
                f"prove it still holds {self.name}; it stops rather than risk a second run. "
                f"Start a new run once the API is back"
            ) from None
        return True

    def release(self) -> None:
        self._renewal.close()
        lease, self.lease_id = self.lease_id, None
        if lease is not None:
            with suppress(Exception):  # an expired or revoked lease has nothing to release
                release_concurrency_slots_with_lease(lease)


@dataclass
class MigrationLocks:
    """Both layers of a run's lock, and the connection that holds the database's."""

    slot: PrefectSlot
    database: DatabaseLock
    notes: list[str] = field(default_factory=list)

    @property
    def connection(self) -> Connection:
        return self.database.connection

    def verify(self, moment: str) -> None:
        """Prove both locks are still this run's before ``moment`` (the backup, the upgrade).

        A lapsed Prefect lease is taken again when the slot is free (the database lock kept
        every other migration out meanwhile); otherwise the run stops.

        Raises:
            LockLost: the database lock is gone, or another run holds the Prefect slot now.
        """
        target = self.slot.target
        if not self.database.still_held():
            raise LockLost(
                f"before {moment}: this run no longer holds the database's migration lock of "
                f"target {target.name!r} (its session died, or the lock file was removed); "
                f"another migration may have run meanwhile, so this run stops. Start a new run "
                f"to plan again"
            )
        if self.slot.still_held():
            return
        self.slot.release()
        try:
            self.slot.acquire(wait_seconds=RETAKE_SECONDS)
        except LockUnavailable:
            raise LockLost(
                f"before {moment}: this run's lease on the concurrency limit {self.slot.name} "
                f"lapsed and another run holds it now; the database lock kept that run out, "
                f"but this run stops rather than race it. Start a new run to plan again"
            ) from None
        note = (
            f"the Prefect lease on {self.slot.name} had lapsed before {moment}; the run "
            f"took the slot again and goes on under the database lock it held throughout"
        )
        self.notes.append(note)


@contextmanager
def migration_locks(target: Target, policy: MigrationPolicy) -> Iterator[MigrationLocks]:
    """Take the Prefect slot, then the database lock on a connection kept for the whole run.

    A run left dead (its ledger row still ``running``, the database lock free) is refused at
    once with the instructions to resolve it, rather than waited for.

    Raises:
        LockUnavailable: another run or session holds either lock past ``wait_seconds``.
    """
    ensure_limit(target)
    if _holder_looks_dead(target):
        time.sleep(DEAD_HOLDER_RECHECK_SECONDS)  # not a live run closing its row just now
        if _holder_looks_dead(target):
            refuse_crashed_holder(target)
    wait = policy.lock.wait_seconds
    slot = PrefectSlot(target)
    slot.acquire(wait_seconds=wait)
    try:
        timeout = policy.preflight.connect_timeout_seconds
        with (
            connect(target, connect_timeout=timeout) as connection,
            backend_for(target).database_lock(connection, target, wait_seconds=wait) as held,
        ):
            yield MigrationLocks(slot, held)
    finally:
        slot.release()


def _holder_looks_dead(target: Target) -> bool:
    """A run past its backup holds the database lock until it has closed its ledger row."""
    try:
        with connect(target) as connection:
            if not ledger.unfinished(connection):
                return False
            connection.rollback()
            return backend_for(target).lock_is_free(connection, target)
    except (MigrationError, DBAPIError):
        return False


def refuse_crashed_holder(target: Target) -> None:
    with connect(target) as connection:
        refuse_unfinished_runs(connection, target)


def lock_retries(policy: MigrationPolicy) -> dict:
    """Task options: retry a step that hit ``lock_timeout``, with a doubling delay."""
    lock = policy.lock
    delays = [lock.retry_backoff_seconds * 2**attempt for attempt in range(lock.lock_retries)]
    return {"retries": lock.lock_retries, "retry_delay_seconds": delays or 0}
