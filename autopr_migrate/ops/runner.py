"""How a safe operation's sub-steps run: outside the revision's transaction, one statement each,
with the timeouts of its lock level, retried on a lock timeout with backoff and jitter.

A sub-step that takes a lock blocking the application (``brief``: ``ACCESS EXCLUSIVE`` and the
like, for a catalog change that takes milliseconds) gets a short ``lock_timeout`` and a short
``statement_timeout``; one that scans or builds under a lock the application's reads and writes
pass (``long``: ``SHARE UPDATE EXCLUSIVE``, a concurrent build, a validation) gets the same short
``lock_timeout`` and no statement limit but the session's. Offline (``alembic upgrade --sql``)
the statements are rendered in order, in an autocommit block, without their checks.

``AUTOPR_MIGRATE_CRASH_AFTER=<operation>:<step>`` kills the process right after that sub-step
(for crash tests: the revision re-run must complete).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from alembic import op
from sqlalchemy import Connection, TextClause, text

LOG = logging.getLogger("autopr_migrate.ops")
CRASH_AFTER_ENV = "AUTOPR_MIGRATE_CRASH_AFTER"
_LOCK_NOT_AVAILABLE = "55P03"


@dataclass(frozen=True)
class Timeouts:
    """The timeouts and retries of the safe operations (``safe.configure`` changes them)."""

    lock_timeout_ms: int = 1000
    brief_statement_timeout_ms: int = 5000
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

    def run(self, step: str, sql: str, *, brief: bool) -> None:
        """One sub-step: its statement under its lock level's timeouts, retried on a lock
        timeout; offline, the statement as text."""
        if self.offline:
            op.execute(sql)
            return
        self._retried(step, lambda c: c.exec_driver_sql(sql), brief=brief)
        LOG.info("%s: %s done", self.operation, step)
        self.crash_point(step)

    def query(self, step: str, statement: TextClause, parameters: dict, *, brief: bool) -> list:
        """A statement with parameters whose rows are wanted, as ``run`` runs it (online)."""
        return self._retried(step, lambda c: list(c.execute(statement, parameters)), brief=brief)

    def _retried(self, step: str, execute, *, brief: bool):
        assert self.connection is not None
        timeouts = settings()
        statement_ms = timeouts.brief_statement_timeout_ms if brief else None
        for attempt in range(timeouts.retries + 1):
            try:
                with _session_timeouts(self.connection, timeouts.lock_timeout_ms, statement_ms):
                    return execute(self.connection)
            except Exception as exc:  # a driver's error, or the flow's guard refusing to queue
                if _code(exc) != _LOCK_NOT_AVAILABLE or attempt == timeouts.retries:
                    raise
                delay = min(timeouts.backoff_cap_seconds, timeouts.backoff_seconds * 2**attempt)
                delay *= random.uniform(0.5, 1.0)
                LOG.info(
                    "%s: %s waited longer than lock_timeout=%d ms; retry %d/%d in %.1f s",
                    self.operation,
                    step,
                    timeouts.lock_timeout_ms,
                    attempt + 1,
                    timeouts.retries,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

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


def _code(exc: BaseException) -> str | None:
    inner = getattr(exc, "orig", None) or exc
    return getattr(inner, "pgcode", None) or getattr(inner, "sqlstate", None)
