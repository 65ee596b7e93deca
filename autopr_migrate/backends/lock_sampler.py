"""What the application feels while a migration runs: who waits for a lock, how long, behind
which of the migration's statements, and the locks those statements hold.

A thread reads ``pg_stat_activity`` (and, for the migration's sessions, ``pg_locks``) every
``interval`` seconds on a connection of its own. The migration's sessions are those whose
``application_name`` is ``autopr-migrate`` (every migrating session carries it), or the
``watched`` pid; every other session waiting for a lock is the application. PostgreSQL only.

With ``cancel_after`` the sampler also acts: when an application query has waited longer than
that behind a statement of the migration that is itself still queued for its lock, the statement
is cancelled (``pg_cancel_backend``), so the lock queue drains; the caller retries it as a lock
timeout. With ``cancel_running`` a statement that holds its lock and works is cancelled too.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import URL, create_engine, text
from sqlalchemy.pool import NullPool

MIGRATING_APPLICATION = "autopr-migrate"  # the application_name of every migrating session
SAMPLER_APPLICATION = "autopr-lock-sampler"
_SESSIONS = text(
    "SELECT a.pid, a.application_name = :ours OR a.pid = :watched AS ours, "
    "left(a.query, 1024) AS query, a.query_start, a.wait_event_type = 'Lock' AS waiting, "
    "EXTRACT(EPOCH FROM now() - a.query_start) AS seconds, "
    "CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END AS blockers "
    "FROM pg_stat_activity a WHERE a.datname = current_database() "
    "AND a.pid <> pg_backend_pid() AND a.query_start IS NOT NULL "
    "AND a.backend_type = 'client backend' "
    "AND (a.wait_event_type = 'Lock' OR a.application_name = :ours OR a.pid = :watched)"
)
_HELD = text(
    "SELECT l.pid, c.relname AS relation, l.mode FROM pg_locks l "
    "JOIN pg_class c ON c.oid = l.relation "
    "WHERE l.pid = ANY(:pids) AND l.granted AND l.locktype = 'relation' "
    "AND c.relkind IN ('r', 'p', 'm') AND c.relnamespace NOT IN "
    "('pg_catalog'::regnamespace, 'pg_toast'::regnamespace, 'information_schema'::regnamespace)"
)
_CANCEL = text("SELECT pg_cancel_backend(:pid)")


@dataclass
class LockWait:
    """One application query that waited for a lock: its longest wait seen, and behind whom."""

    pid: int
    query: str
    started: datetime
    seconds: float
    blocked_by: set[int] = field(default_factory=set)
    first_seen: float = 0.0  # epoch seconds
    last_seen: float = 0.0
    behind: tuple[int, datetime] | None = None  # the migration's statement it waited behind


@dataclass
class OurStatement:
    """A statement of the migration as PostgreSQL ran it: when, the table locks it held (the
    strongest mode per table), and how long it was itself queued for a lock."""

    pid: int
    query: str
    started: datetime
    first_seen: float
    last_seen: float
    held: dict[str, set[str]] = field(default_factory=dict)  # table -> modes (pg_locks names)
    queued_seconds: float = 0.0
    running_samples: int = 0  # samples in which it was not waiting for a lock


@dataclass
class Cancel:
    pid: int
    query: str
    started: datetime
    waited: float  # the application's wait that made the sampler cancel it


@dataclass
class Observed:
    waits: dict[tuple[int, datetime], LockWait] = field(default_factory=dict)
    statements: dict[tuple[int, datetime], OurStatement] = field(default_factory=dict)
    cancelled: list[Cancel] = field(default_factory=list)
    samples: int = 0
    problem: str | None = None  # the sampler could not sample (its connection failed)

    @property
    def longest_wait(self) -> float:
        return max((wait.seconds for wait in self.waits.values()), default=0.0)

    @property
    def blocked_seconds(self) -> float:
        """Every waiting query's wait, added up: the time the application spent blocked."""
        return sum(wait.seconds for wait in self.waits.values())

    def behind(self, pid: int) -> list[LockWait]:
        return [wait for wait in self.waits.values() if pid in wait.blocked_by]

    @property
    def held(self) -> dict[str, set[tuple[str, str]]]:
        """statement -> the (table, mode) locks it held."""
        out: dict[str, set[tuple[str, str]]] = {}
        for statement in self.statements.values():
            locks = out.setdefault(statement.query, set())
            locks.update((table, mode) for table, modes in statement.held.items() for mode in modes)
        return out

    def between(self, began: float, ended: float) -> Observed:
        """What was seen while the window [began, ended] (epoch seconds) was open."""
        return Observed(
            {k: w for k, w in self.waits.items() if w.last_seen >= began and w.first_seen <= ended},
            {
                k: s
                for k, s in self.statements.items()
                if s.last_seen >= began and s.first_seen <= ended
            },
            [c for c in self.cancelled if began <= c.started.timestamp() <= ended],
            self.samples,
            self.problem,
        )


class LockSampler:
    """``with LockSampler(url) as observed:`` samples while the block runs."""

    def __init__(
        self,
        url: URL,
        *,
        interval: float = 0.05,
        watched: int | None = None,
        cancel_after: float | None = None,
        cancel_running: bool = False,
    ) -> None:
        self.url, self.interval, self.watched = url, interval, watched
        self.cancel_after, self.cancel_running = cancel_after, cancel_running
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
                connection.exec_driver_sql(f"SET application_name = '{SAMPLER_APPLICATION}'")
                while not self._stop.is_set():
                    self._sample(connection)
                    time.sleep(self.interval)
        except Exception as exc:  # a lost sampler must not fail the migration it watches
            self.observed.problem = f"the lock sampler stopped: {type(exc).__name__}"
        finally:
            engine.dispose()

    def _sample(self, connection) -> None:
        observed, now = self.observed, time.time()
        observed.samples += 1
        rows = connection.execute(
            _SESSIONS, {"ours": MIGRATING_APPLICATION, "watched": self.watched or -1}
        ).all()
        ours = {row.pid: row for row in rows if row.ours}
        for row in ours.values():
            key = (row.pid, row.query_start)
            statement = observed.statements.get(key)
            if statement is None:
                statement = observed.statements[key] = OurStatement(
                    row.pid, row.query, row.query_start, now, now
                )
            statement.last_seen = now
            if row.waiting:
                statement.queued_seconds = max(statement.queued_seconds, float(row.seconds))
            else:
                statement.running_samples += 1
        if ours:
            for lock in connection.execute(_HELD, {"pids": list(ours)}):
                row = ours[lock.pid]
                held = observed.statements[(row.pid, row.query_start)].held
                held.setdefault(lock.relation, set()).add(lock.mode)
        for row in rows:
            if row.ours or not row.waiting:
                continue
            key = (row.pid, row.query_start)
            wait = observed.waits.get(key)
            if wait is None:
                wait = observed.waits[key] = LockWait(
                    row.pid, row.query, row.query_start, 0.0, first_seen=now
                )
            wait.seconds = max(wait.seconds, float(row.seconds))
            wait.last_seen = now
            wait.blocked_by.update(row.blockers or ())
            blocker = next((ours[pid] for pid in row.blockers or () if pid in ours), None)
            if blocker is not None:
                if wait.behind is None:  # the statement it met; later ones of ours only kept it
                    wait.behind = (blocker.pid, blocker.query_start)
                self._maybe_cancel(connection, blocker, wait)

    def _maybe_cancel(self, connection, statement, wait: LockWait) -> None:
        if self.cancel_after is None or wait.seconds <= self.cancel_after:
            return
        if not (statement.waiting or self.cancel_running):
            return
        key = (statement.pid, statement.query_start)
        if any((c.pid, c.started) == key for c in self.observed.cancelled):
            return
        self.observed.cancelled.append(
            Cancel(statement.pid, statement.query, statement.query_start, wait.seconds)
        )
        connection.execute(_CANCEL, {"pid": statement.pid})
