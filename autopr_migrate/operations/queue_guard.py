"""Never queue a blocking statement behind a long transaction (PostgreSQL).

A statement waiting for a lock that blocks writes (an ``ALTER TABLE`` waiting behind a long
report, say) blocks every query on that table that arrives after it, for as long as it waits.
Before sending such a statement (SHARE or stronger, as the analyzer reads it), the guard looks
for transactions of other sessions, open longer than ``lock.queue_behind_seconds``, that hold
a lock on one of its tables in a mode that conflicts with the statement's. If there is one, the
statement is not sent: the attempt ends at once as a lock timeout (SQLSTATE 55P03), its
transaction rolls back (releasing what earlier statements locked), and the lock policy retries
after its backoff. Nothing queues, so the application waits for nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from autopr_migrate.analysis.analyzer import LintError, analyze
from autopr_migrate.analysis.walk import BLOCKING
from autopr_migrate.backends.lock_sampler import MIGRATING_APPLICATION, SAMPLER_APPLICATION
from autopr_migrate.history.runtime import engine_hook
from autopr_migrate.policy.parameters import LockPolicy

_MAY_BLOCK = re.compile(
    r"^\s*(alter|drop|create|truncate|lock|cluster|reindex|vacuum|refresh|comment)\b", re.I
)
# pg_locks' names of the lock modes, weakest first, and PostgreSQL's conflict table: the
# positions of the modes each mode (as the analyzer names it) conflicts with.
_HELD_MODES = (
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)
_CONFLICTS_WITH = {
    "ACCESS SHARE": "7",
    "ROW SHARE": "67",
    "ROW EXCLUSIVE": "4567",
    "SHARE UPDATE EXCLUSIVE": "34567",
    "SHARE": "23567",
    "SHARE ROW EXCLUSIVE": "234567",
    "EXCLUSIVE": "1234567",
    "ACCESS EXCLUSIVE": "01234567",
}


class LongTransactionAhead(Exception):
    """The statement was not sent: it would have queued behind a long transaction."""

    pgcode = "55P03"  # lock_not_available: handled and retried as a lock timeout


@contextmanager
def no_queue_behind_long_transactions(policy: LockPolicy) -> Iterator[None]:
    """While the block runs, every PostgreSQL statement this process sends is guarded."""
    if policy.queue_behind_seconds <= 0:
        yield
        return

    def guard(connection, cursor, statement, _parameters, _context, _many) -> None:
        if connection.dialect.name != "postgresql" or not _MAY_BLOCK.match(statement):
            return
        blocking = _blocking_lock(statement)
        if blocking is not None:
            _refuse_behind_long_transactions(cursor, *blocking, policy)

    with engine_hook("before_cursor_execute", guard):
        yield


def _blocking_lock(statement: str) -> tuple[list[str], str] | None:
    """The tables and the lock mode of a statement whose lock blocks writes."""
    try:
        (read,) = analyze(statement).statements
    except (LintError, ValueError):
        return None
    if read.lock not in BLOCKING or not read.tables:
        return None
    return list(read.tables), read.lock


def _refuse_behind_long_transactions(
    cursor, tables: list[str], mode: str, policy: LockPolicy
) -> None:
    names = ", ".join("'" + table.replace("'", "''") + "'" for table in tables)
    conflicting = ", ".join(f"'{_HELD_MODES[int(n)]}'" for n in _CONFLICTS_WITH[mode])
    query = (
        "SELECT a.pid, round(EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)) AS open_s, "
        "c.relname FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "JOIN pg_class c ON c.oid = l.relation WHERE l.granted AND l.locktype = 'relation' "
        f"AND l.mode IN ({conflicting}) "
        f"AND l.relation IN (SELECT to_regclass(name) FROM unnest(ARRAY[{names}]) name) "
        "AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend' "
        f"AND a.application_name NOT IN ('{MIGRATING_APPLICATION}', '{SAMPLER_APPLICATION}') "
        "AND a.xact_start < clock_timestamp() - "
        f"interval '{policy.queue_behind_seconds:g} seconds' ORDER BY a.xact_start LIMIT 1"
    )
    cursor.execute(query)
    ahead = cursor.fetchone()
    if ahead is not None:
        pid, open_seconds, table = ahead
        raise LongTransactionAhead(
            f"not queueing behind a transaction open for {open_seconds:g} s (pid {pid}) that "
            f"holds a conflicting lock on {table}: waiting for its lock would block the "
            f"application for as long as that transaction lasts"
        )
