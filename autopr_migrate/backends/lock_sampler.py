"""What the application feels while a migration runs: who waits for a lock, how long, behind whom.

A thread reads ``pg_stat_activity`` every ``interval`` seconds on a connection of its own: each
session of the database waiting for a lock, since when its query runs, and the sessions that
block it (``pg_blocking_pids``). With ``watched`` (the migrating session's pid) it also records
the locks that session holds, by the statement it runs. The migration's own sessions carry
``application_name`` ``autopr-migrate`` and are not counted as the application. PostgreSQL only.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import URL, create_engine, text
from sqlalchemy.pool import NullPool

MIGRATING_APPLICATION = "autopr-migrate"  # the application_name of every migrating session
_WAITING = text(
    "SELECT a.pid, left(a.query, 200) AS query, a.query_start, "
    "EXTRACT(EPOCH FROM now() - a.query_start) AS seconds, pg_blocking_pids(a.pid) AS blockers "
    "FROM pg_stat_activity a WHERE a.datname = current_database() "
    "AND a.pid <> pg_backend_pid() AND a.wait_event_type = 'Lock' "
    "AND (:ignored = '' OR a.application_name IS DISTINCT FROM :ignored)"
)
_HELD = text(
    "SELECT coalesce(c.relname, l.locktype) AS relation, l.mode, left(a.query, 200) AS query "
    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "LEFT JOIN pg_class c ON c.oid = l.relation "
    "WHERE l.pid = :pid AND l.granted AND l.locktype = 'relation' "
    "AND c.relnamespace <> 'pg_catalog'::regnamespace"
)


@dataclass
class LockWait:
    """One query that waited for a lock: the longest wait seen, and who it waited behind."""

    pid: int
    query: str
    started: datetime
    seconds: float
    blocked_by: set[int] = field(default_factory=set)


@dataclass
class Observed:
    waits: dict[tuple[int, datetime], LockWait] = field(default_factory=dict)
    held: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # statement -> locks
    samples: int = 0

    @property
    def longest_wait(self) -> float:
        return max((wait.seconds for wait in self.waits.values()), default=0.0)

    @property
    def blocked_seconds(self) -> float:
        """Every waiting query's wait, added up: the time the application spent blocked."""
        return sum(wait.seconds for wait in self.waits.values())

    def behind(self, pid: int) -> list[LockWait]:
        return [wait for wait in self.waits.values() if pid in wait.blocked_by]


class LockSampler:
    """``with LockSampler(url) as observed:`` samples while the block runs."""

    def __init__(
        self,
        url: URL,
        *,
        interval: float = 0.05,
        watched: int | None = None,
        ignored_application: str = "",
    ) -> None:
        """``ignored_application``: sessions of that ``application_name`` are not the
        application (the migration's own, when it waits behind a long transaction)."""
        self.url, self.interval, self.watched = url, interval, watched
        self.ignored = ignored_application
        self.observed = Observed()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lock-sampler", daemon=True)

    def __enter__(self) -> Observed:
        self._thread.start()
        return self.observed

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        engine = create_engine(self.url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT")
                while not self._stop.is_set():
                    self._sample(connection)
                    time.sleep(self.interval)
        finally:
            engine.dispose()

    def _sample(self, connection) -> None:
        observed = self.observed
        observed.samples += 1
        for row in connection.execute(_WAITING, {"ignored": self.ignored}):
            key = (row.pid, row.query_start)
            wait = observed.waits.setdefault(
                key, LockWait(row.pid, row.query, row.query_start, 0.0)
            )
            wait.seconds = max(wait.seconds, float(row.seconds))
            wait.blocked_by.update(row.blockers or ())
        if self.watched is not None:
            for row in connection.execute(_HELD, {"pid": self.watched}):
                observed.held.setdefault(row.query, set()).add((row.relation, row.mode))
