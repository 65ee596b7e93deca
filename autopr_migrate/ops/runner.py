"""How a safe operation's sub-steps run: outside the revision's transaction, one statement each,
with the timeouts of its lock level, retried on a lock timeout with backoff and jitter.

Three kinds of sub-step. ``BRIEF``: a catalog change under a lock that blocks the application
(``ACCESS EXCLUSIVE`` and the like): a short ``lock_timeout`` (queued, it blocks everyone behind
it) and a short ``statement_timeout``. ``LONG``: a scan or a build under a lock the application's
reads and writes pass (``SHARE UPDATE EXCLUSIVE``: a concurrent build, a validation): a long
``lock_timeout`` (waiting, it blocks no query of the application; a concurrent build also waits
for every older transaction) and the session's statement limit. ``BATCH``: a backfill's batch:
the short ``lock_timeout`` (row locks) and the session's statement limit. A retried unit may be
several statements (read the catalog, drop a leftover, build): the whole unit is retried.
Offline (``alembic upgrade --sql``) the statements are rendered in order, without their checks.

``AUTOPR_MIGRATE_CRASH_AFTER=<operation>:<step>`` kills the process right after that sub-step
(for crash tests: the revision re-run must complete).
"""

from __future__ import annotations

import logging
import os
import random
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from alembic import op
from sqlalchemy import Connection, TextClause, text

from autopr_migrate.analysis.model import safe_step_comment

LOG = logging.getLogger("autopr_migrate.ops")
T = TypeVar("T")
CRASH_AFTER_ENV = "AUTOPR_MIGRATE_CRASH_AFTER"
_LOCK_NOT_AVAILABLE = "55P03"


BRIEF, LONG, BATCH = "brief", "long", "batch"


@dataclass(frozen=True)
class Timeouts:
    """The timeouts and retries of the safe operations (``safe.configure`` changes them)."""

    lock_timeout_ms: int = 1000
    brief_statement_timeout_ms: int = 5000
    long_lock_timeout_ms: int = 600_000
    retries: int = 8
    backoff_seconds: float = 0.5
    backoff_cap_seconds: float = 30.0


_settings = [Timeouts()]


def settings() -> Timeouts:
    return _settings[0]


def configure(**changes: float) -> Timeouts:
    """Change the timeouts for the operations that follow (``lock_timeout_ms=500``, ...)."""
    from dataclasses import replace

    _settings[0] = replace(_settings[0], **changes)
    return _settings[0]


class Runner:
    """The sub-steps of one operation, on the revision's connection."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        context = op.get_context()
        self.offline = context.as_sql
        self.dialect = context.dialect.name
        self.connection: Connection | None = None if self.offline else op.get_bind()

    @property
    def postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def outside_transaction(self) -> Iterator[None]:
        """Commit what the revision did so far; the block's statements each commit alone."""
        with op.get_context().autocommit_block():
            yield

    def read(self, sql: str, **parameters: object) -> list:
        """A catalog read (online only; offline there is nothing to read)."""
        assert self.connection is not None
        return list(self.connection.execute(text(sql), parameters))

    def run(self, step: str, sql: str, *, kind: str) -> None:
        """One sub-step: its statement under its kind's timeouts, retried on a lock timeout;
        offline, the statement as text."""
        if self.offline:
            op.execute(text(escape_colons(f"{safe_step_comment(self.operation, step)}\n{sql}")))
            return
        self.retried(step, lambda: self.execute(sql, kind=kind))

    def execute(self, sql: str, *, kind: str) -> None:
        """One statement under its kind's timeouts, not retried (a part of a retried unit)."""
        assert self.connection is not None
        paramstyle = self.connection.dialect.paramstyle
        driver_sql = sql.replace("%", "%%") if paramstyle in ("format", "pyformat") else sql
        with _session_timeouts(self.connection, *_timeouts(kind)):
            self.connection.exec_driver_sql(driver_sql)

    def query(self, step: str, statement: TextClause, parameters: dict, *, kind: str) -> list:
        """A statement with parameters whose rows are wanted, retried as ``run`` is (online)."""
        assert self.connection is not None
        connection = self.connection

        def rows() -> list:
            with _session_timeouts(connection, *_timeouts(kind)):
                return list(connection.execute(statement, parameters))

        return self.retried(step, rows)

    def retried(self, step: str, unit: Callable[[], T]) -> T:
        """``unit`` until it does not end in a lock timeout (or the retries are spent); then the
        crash point of ``step``."""
        timeouts = settings()
        for attempt in range(timeouts.retries + 1):
            try:
                done = unit()
                break
            except Exception as exc:  # a driver's error, or the flow's guard refusing to queue
                if _code(exc) != _LOCK_NOT_AVAILABLE or attempt == timeouts.retries:
                    raise
                delay = min(timeouts.backoff_cap_seconds, timeouts.backoff_seconds * 2**attempt)
                delay *= random.uniform(0.5, 1.0)
                LOG.info(
                    "%s: %s met a lock timeout; retry %d/%d in %.1f s",
                    self.operation,
                    step,
                    attempt + 1,
                    timeouts.retries,
                    delay,
                )
                time.sleep(delay)
        LOG.info("%s: %s done", self.operation, step)
        self.crash_point(step)
        return done

    def crash_point(self, step: str) -> None:
        if os.environ.get(CRASH_AFTER_ENV) == f"{self.operation}:{step}":
            os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def _session_timeouts(
    connection: Connection, lock_ms: int, statement_ms: int | None
) -> Iterator[None]:
    """Session timeouts for one statement in autocommit, and the previous ones back after."""
    before = [
        connection.exec_driver_sql("SHOW lock_timeout").scalar(),
        connection.exec_driver_sql("SHOW statement_timeout").scalar(),
    ]
    connection.exec_driver_sql(f"SET lock_timeout = {int(lock_ms)}")
    if statement_ms is not None:
        connection.exec_driver_sql(f"SET statement_timeout = {int(statement_ms)}")
    try:
        yield
    finally:
        if not connection.invalidated:
            connection.exec_driver_sql(f"SET lock_timeout = '{before[0]}'")
            connection.exec_driver_sql(f"SET statement_timeout = '{before[1]}'")


def _timeouts(kind: str) -> tuple[int, int | None]:
    timeouts = settings()
    return {
        BRIEF: (timeouts.lock_timeout_ms, timeouts.brief_statement_timeout_ms),
        LONG: (timeouts.long_lock_timeout_ms, None),
        BATCH: (timeouts.lock_timeout_ms, None),
    }[kind]


def escape_colons(sql: str) -> str:
    """SQL for ``text()``: a lone colon is a colon, not a parameter (``::`` casts stay)."""
    return re.sub(r"(?<![:\\]):(?!:)", r"\\:", sql)


def is_lock_timeout(exc: BaseException) -> bool:
    return _code(exc) == _LOCK_NOT_AVAILABLE


def _code(exc: BaseException) -> str | None:
    inner = getattr(exc, "orig", None) or exc
    return getattr(inner, "pgcode", None) or getattr(inner, "sqlstate", None)
