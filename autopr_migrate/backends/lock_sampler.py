"""What the application feels while a migration runs: who waits for a lock, how long, behind
which of the migration's statements, and the locks those statements hold.

A thread reads ``pg_stat_activity`` (and, for the migration's sessions, ``pg_locks``) every
``interval`` seconds on a connection of its own. The migration's sessions are those whose
``application_name`` is ``autopr-migrate`` (every migrating session carries it), or the
``watched`` pid; every other session waiting for a lock is the application. A wait is blamed on
the statement of the migration that took the lock it waits for (else, when ours is queued for
that lock too, the one ours runs). PostgreSQL only.

With ``cancel_after`` the sampler also acts: when an application query has waited longer than
that behind a statement of the migration that is itself still queued for its lock, the statement
is cancelled (``pg_cancel_backend``, only while it is still that statement, still queued, in the
``watched`` session or one of ours opened since the sampler started), so the lock queue
drains; the caller retries it as a lock timeout. A statement that holds its lock and works is
never cancelled.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import URL, create_engine, text
from sqlalchemy.pool import NullPool

MIGRATING_APPLICATION = "autopr-migrate"  # the application_name of every migrating session
SAMPLER_APPLICATION = "autopr-lock-sampler"
_SESSIONS = text(
    "SELECT a.pid, a.application_name = :ours OR a.pid = :watched AS ours, "
    "left(a.query, 1024) AS query, a.query_start, a.xact_start, a.backend_start, "
    "a.state = 'active' AS active, a.wait_event_type = 'Lock' AS waiting, "
    "EXTRACT(EPOCH FROM clock_timestamp() - a.query_start) AS seconds, "
    "CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END AS blockers, "
    "CASE WHEN a.wait_event_type = 'Lock' THEN (SELECT l.relation FROM pg_locks l "
    "WHERE l.pid = a.pid AND NOT l.granted AND l.relation IS NOT NULL LIMIT 1) END AS waits_on "
    "FROM pg_stat_activity a WHERE a.datname = current_database() "
    "AND a.pid <> pg_backend_pid() AND a.query_start IS NOT NULL "
    "AND a.backend_type = 'client backend' "
    "AND (a.wait_event_type = 'Lock' OR a.application_name = :ours OR a.pid = :watched)"
)
# The statement each lock is read with comes from the same query: a session may have moved on
# to its next statement between two queries of one sample.
_HELD = text(
    "SELECT l.pid, l.relation AS oid, c.relname AS relation, l.mode, a.query_start, "
    "a.xact_start, left(a.query, 1024) AS query FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid "
    "JOIN pg_class c ON c.oid = l.relation "
    "WHERE l.pid = ANY(:pids) AND l.granted AND l.locktype = 'relation' "
    "AND c.relkind IN ('r', 'p', 'm') AND c.relnamespace NOT IN "
    "('pg_catalog'::regnamespace, 'pg_toast'::regnamespace, 'information_schema'::regnamespace)"
)
# Only while it is still that statement, still queued for its lock.
_CANCEL = text(
    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = :pid "
    "AND query_start = :started AND wait_event_type = 'Lock'"
)


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
    # the (table, mode) locks first seen while it ran: not inherited from an earlier statement
    # of the same transaction
    acquired: set[tuple[str, str]] = field(default_factory=set)
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

    def behind_migration(self) -> Observed:
        """Only the waits behind the migration (not the application's waits for itself)."""
        return replace(self, waits={k: w for k, w in self.waits.items() if w.behind is not None})

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
    ) -> None:
        self.url, self.interval, self.watched = url, interval, watched
        self.cancel_after = cancel_after
        self.observed = Observed()
        # (pid, transaction start, relation oid) -> the statement that first held a lock on it
        self._holders: dict[tuple, tuple[int, datetime]] = {}
        self._seen_modes: set[tuple] = set()  # (pid, transaction start, relation oid, mode)
        self._since: datetime | None = None  # sessions of ours opened since may be cancelled
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
                self._since = connection.execute(text("SELECT clock_timestamp()")).scalar()
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
            if row.active:
                statement.last_seen = now
                if row.waiting:
                    statement.queued_seconds = max(statement.queued_seconds, float(row.seconds))
                else:
                    statement.running_samples += 1
        if ours:
            for lock in connection.execute(_HELD, {"pids": list(ours)}):
                key = (lock.pid, lock.query_start)
                statement = observed.statements.get(key)
                if statement is None:
                    statement = observed.statements[key] = OurStatement(
                        lock.pid, lock.query, lock.query_start, now, now
                    )
                statement.held.setdefault(lock.relation, set()).add(lock.mode)
                self._holders.setdefault((lock.pid, lock.xact_start, lock.oid), key)
                seen = (lock.pid, lock.xact_start, lock.oid, lock.mode)
                if seen not in self._seen_modes:
                    self._seen_modes.add(seen)
                    statement.acquired.add((lock.relation, lock.mode))
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
            if blocker is None:
                continue
            if wait.behind is None:
                # The statement that took the lock it waits for; else (ours is queued for that
                # lock too) the one ours is running.
                wait.behind = self._holders.get(
                    (blocker.pid, blocker.xact_start, row.waits_on),
                    (blocker.pid, blocker.query_start),
                )
            self._maybe_cancel(connection, blocker, wait)

    def _maybe_cancel(self, connection, statement, wait: LockWait) -> None:
        if self.cancel_after is None or wait.seconds <= self.cancel_after:
            return
        if not statement.waiting:
            return  # it holds its lock and works: its cost was in the rehearsal's report
        opened_since = self._since is not None and statement.backend_start >= self._since
        if not (statement.pid == self.watched or opened_since):
            return  # a session of that name this run did not open
        key = (statement.pid, statement.query_start)
        if any((c.pid, c.started) == key for c in self.observed.cancelled):
            return
        cancel = Cancel(statement.pid, statement.query, statement.query_start, wait.seconds)
        self.observed.cancelled.append(cancel)  # before: the statement fails the moment it is
        cancelled = connection.execute(
            _CANCEL, {"pid": statement.pid, "started": statement.query_start}
        ).scalar()
        if not cancelled:  # it got its lock meanwhile, or is another statement now
            self.observed.cancelled.remove(cancel)
