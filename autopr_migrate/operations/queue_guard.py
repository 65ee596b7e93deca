"""Never queue a blocking statement behind a long transaction (PostgreSQL).

A statement waiting for a lock that blocks writes (an ``ALTER TABLE`` waiting behind a long
report, say) blocks every query on that table that arrives after it, for as long as it waits.
Before sending such a statement (SHARE or stronger, as the analyzer reads it), the guard looks
for transactions of other sessions that hold a lock on one of its tables and have been open
longer than ``lock.queue_behind_seconds``. It waits for them to end, up to ``lock_timeout``;
if they do not, the statement is not sent and the attempt ends as a lock timeout (SQLSTATE
55P03), which the lock policy retries. Nothing queues, so the application waits for nothing.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

from autopr_migrate.analysis.analyzer import LintError, analyze
from autopr_migrate.analysis.walk import BLOCKING
from autopr_migrate.backends.lock_sampler import MIGRATING_APPLICATION, SAMPLER_APPLICATION
from autopr_migrate.history.runtime import engine_hook
from autopr_migrate.policy.parameters import LockPolicy

LOG = logging.getLogger(__name__)
_MAY_BLOCK = re.compile(
    r"^\s*(alter|drop|create|truncate|lock|cluster|reindex|vacuum|refresh|comment)\b", re.I
)
_POLL_SECONDS = 0.1


class LongTransactionAhead(Exception):
    """The statement was not sent: it would have queued behind a long transaction."""

    pgcode = "55P03"  # lock_not_available: handled and retried as a lock timeout


@contextmanager
def no_queue_behind_long_transactions(
    policy: LockPolicy, *, log: logging.Logger | logging.LoggerAdapter = LOG
) -> Iterator[None]:
    """While the block runs, every PostgreSQL statement this process sends is guarded."""
    if policy.queue_behind_seconds <= 0:
        yield
        return

    def guard(connection, cursor, statement, _parameters, _context, _many) -> None:
        if connection.dialect.name != "postgresql" or not _MAY_BLOCK.match(statement):
            return
        tables = _blocking_tables(statement)
        if tables:
            _wait_out(cursor, tables, policy, log)

    with engine_hook("before_cursor_execute", guard):
        yield


def _blocking_tables(statement: str) -> list[str]:
    try:
        (read,) = analyze(statement).statements
    except (LintError, ValueError):
        return []
    return list(read.tables) if read.lock in BLOCKING else []


def _wait_out(cursor, tables: list[str], policy: LockPolicy, log) -> None:
    names = ", ".join("'" + table.replace("'", "''") + "'" for table in tables)
    query = (
        "SELECT DISTINCT a.pid, round(EXTRACT(EPOCH FROM now() - a.xact_start)) AS open_s, "
        "c.relname FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "JOIN pg_class c ON c.oid = l.relation WHERE l.granted AND l.locktype = 'relation' "
        f"AND l.relation IN (SELECT to_regclass(name) FROM unnest(ARRAY[{names}]) name) "
        "AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend' "
        f"AND a.application_name NOT IN ('{MIGRATING_APPLICATION}', '{SAMPLER_APPLICATION}') "
        f"AND a.xact_start < now() - interval '{policy.queue_behind_seconds:g} seconds'"
    )
    deadline = time.monotonic() + policy.lock_timeout_seconds
    logged = False
    while True:
        cursor.execute(query)
        ahead = cursor.fetchall()
        if not ahead:
            return
        pid, open_seconds, table = ahead[0]
        if time.monotonic() >= deadline:
            raise LongTransactionAhead(
                f"not queueing behind a transaction open for {open_seconds:g} s (pid {pid}) "
                f"that holds a lock on {table}: its lock would block the application for as "
                f"long as that transaction lasts"
            )
        if not logged:
            log.info(
                "waiting for a transaction open for %s s (pid %s) on %s to end before a "
                "statement that would block it",
                open_seconds,
                pid,
                table,
            )
            logged = True
        time.sleep(_POLL_SECONDS)
