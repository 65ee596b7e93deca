"""A project's ``env.py`` run in a fresh Python process.

For histories whose ``env.py`` reads settings its package caches when first imported (Prefect's
own reads the database URL from Prefect's settings, which a worker has long since loaded), or
keeps state of its own. The call is sent to the child pickled, with the environment it runs
in; the child sets that environment before anything of the project is imported, runs the
call, and writes what happens (revisions applied, the result, or the error) as lines on its
own stdout, while anything ``env.py`` prints goes to stderr. The child dies with its parent.
The run's migration lock stays held by the parent's connection meanwhile.
"""

from __future__ import annotations

import base64
import ctypes
import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import cloudpickle
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from autopr_migrate.errors import MigrationError, describe
from autopr_migrate.history.runtime import SessionSettings, project_value
from autopr_migrate.masking import mask_secrets
from autopr_migrate.targets.project import Project

T = TypeVar("T")
LOG = logging.getLogger(__name__)
_PARENT = "AUTOPR_MIGRATE_PARENT_PID"
Emit = Callable[[str, Any], None]
_LAST_ERROR_LINES = 5


class IsolatedFailure(MigrationError):
    """The call failed in the child process; ``sqlstate`` is the database's error code."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def run_isolated(
    call: Callable[[Emit], T],
    *,
    environment: Mapping[str, str],
    on_event: Emit | None = None,
) -> T:
    """``call(emit)`` in a fresh interpreter with ``environment`` added to this one's."""
    # The environment first: the child sets it before unpickling the call imports anything.
    request = pickle.dumps(dict(environment)) + cloudpickle.dumps(call)
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            [sys.executable, "-m", "autopr_migrate.history.isolated"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env={**os.environ, _PARENT: str(os.getpid())},
        )
        try:
            outcome = _answers(child, request, on_event)
            child.wait()
        finally:
            if child.poll() is None:  # never a migration going on that nobody waits for
                child.kill()
                child.wait()
        if outcome is None:
            errors.seek(0)
            tail = errors.read().decode(errors="replace").strip().splitlines()[-_LAST_ERROR_LINES:]
            raise IsolatedFailure(
                f"the project's env.py process ended with exit code {child.returncode} before "
                f"answering: {mask_secrets(' | '.join(tail))[:400] or 'no output'}"
            )
    kind, value = outcome
    if kind == "raise":
        raise value
    if kind == "error":
        raise IsolatedFailure(*value)
    return value


def _answers(
    child: subprocess.Popen, request: bytes, on_event: Emit | None
) -> tuple[str, Any] | None:
    """Send the request; relay the child's events until its outcome arrives."""
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(request)
    child.stdin.close()
    for line in child.stdout:
        kind, _, payload = line.decode().partition(" ")
        value = pickle.loads(base64.b64decode(payload))
        if kind in ("result", "error", "raise"):
            return kind, value
        if on_event is not None:
            try:
                on_event(*value)
            except Exception as exc:  # a progress report that fails must not stop a migration
                LOG.warning("could not report %s from the env.py process: %s", value[0], exc)
    return None


def _picklable(exc: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # an error type whose arguments do not round-trip
        return False
    return True


def in_own_process(
    project: Project,
    url: str,
    work: Callable[[Emit], T],
    *,
    session: SessionSettings | None = None,
    on_event: Emit | None = None,
) -> T:
    """``work`` in a fresh interpreter with the project's environment (``{url}`` filled in)
    and the session's."""
    environment = {name: project_value(value, url) for name, value in project.environment}
    environment.update((session or SessionSettings()).environment)
    return run_isolated(work, environment=environment, on_event=on_event)


def on_url(url: str, session: SessionSettings | None, work: Callable[[Connection], T]) -> T:
    """In the child: ``work`` on a new connection to ``url`` carrying the session's settings."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            statements = (session or SessionSettings()).statements.get(connection.dialect.name)
            for statement in statements or ():
                connection.exec_driver_sql(statement)
            connection.commit()
            return work(connection)
    finally:
        engine.dispose()


def shared(project: Project) -> Project:
    """The same project, run in this process (the child's own view of it)."""
    return replace(project, isolated=False)


def _die_with_parent() -> None:
    """Linux: this child is killed when the worker that started it dies (a crash, OOM); if it
    died already, the child ends now."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != int(os.environ.get(_PARENT, os.getppid())):
        os._exit(1)


def _child() -> None:
    _die_with_parent()
    answer = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what env.py prints must not mix with the answers
    sys.stdout = sys.stderr

    def send(kind: str, value: Any) -> None:
        answer.write(f"{kind} {base64.b64encode(pickle.dumps(value)).decode()}\n")

    os.environ.update(pickle.load(sys.stdin.buffer))
    call = pickle.load(sys.stdin.buffer)

    def emit(kind: str, payload: Any) -> None:
        send("event", (kind, payload))

    try:
        # In a worker thread of an event loop: an env.py may hand async work back to the loop
        # through anyio (Prefect's does); a plain one, or one calling asyncio.run, is unaffected.
        send("result", anyio.run(partial(anyio.to_thread.run_sync, call, emit)))
        answer.flush()
        os._exit(0)  # a thread env.py left running must not keep the answer waiting
    except BaseException as exc:  # everything goes back to the parent, which decides
        if isinstance(exc, MigrationError) and _picklable(exc):
            send("raise", exc)
        else:
            inner = getattr(exc, "orig", None) or exc
            sqlstate = getattr(inner, "pgcode", None) or getattr(inner, "sqlstate", None)
            send("error", (describe(exc), sqlstate))
    answer.flush()
    os._exit(1)


if __name__ == "__main__":
    _child()
