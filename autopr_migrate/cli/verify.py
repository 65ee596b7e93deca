"""``autopr-migrate verify``: the schema-history checks CI runs before a revision lands.

One head; every ``equivalent_sha256`` a revision declares is well-formed; every revision up,
down and up again, one step at a time, on a throwaway database (SQLite by default, or a new
PostgreSQL database on the server given); and no difference between the models and the
database at head.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from autopr_migrate.backends.engine import make_engine
from autopr_migrate.errors import DatabaseUnreachable, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.history.equivalence import declared_equivalents
from autopr_migrate.history.isolated import in_own_process, on_url, shared
from autopr_migrate.targets.project import Project

Check = tuple[str, bool, str]
ALL_CHECKS = 4  # a failed check skips the ones after it: passing means all of them ran


@contextmanager
def throwaway_database(server: URL | None) -> Iterator[URL]:
    """A new empty database: a temporary SQLite file, or a database created on ``server``."""
    if server is None:
        with tempfile.TemporaryDirectory(prefix="autopr-verify-") as directory:
            yield make_url(f"sqlite:///{Path(directory) / 'verify.db'}")
        return
    name = f"autopr_verify_{uuid.uuid4().hex[:10]}"
    admin = make_engine(server, poolclass=NullPool).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except DBAPIError as exc:
        admin.dispose()
        raise DatabaseUnreachable(
            f"cannot create the throwaway database on --server: {describe(exc)[:300]}; pass a "
            f"PostgreSQL URL whose user may create databases"
        ) from None
    try:
        yield server.set(database=name)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def verify_history(project: Project, server: URL | None = None) -> list[Check]:
    """(check, passed, detail) for each check; later checks are skipped when one fails."""
    found = alembic_ops.heads(project)
    checks: list[Check] = [("single head", len(found) == 1, ", ".join(found))]
    if len(found) != 1:
        return checks
    checks.append(_check("declared equivalent texts", lambda: _declarations(project)))
    if not checks[-1][1]:
        return checks
    with throwaway_database(server) as url:
        if project.isolated:  # one process of its own for all of it, not three per revision
            address = url.render_as_string(hide_password=False)
            checks += in_own_process(
                project,
                address,
                lambda _: on_url(address, None, lambda own: _checks_on(shared(project), own)),
            )
            return checks
        engine = make_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                checks += _checks_on(project, connection)
        finally:
            engine.dispose()
    return checks


def _checks_on(project: Project, connection: Connection) -> list[Check]:
    checks = [
        _check("up, down, up one revision at a time", lambda: _round_trip(project, connection))
    ]
    if checks[-1][1]:
        checks.append(
            _check("models match the database at head", lambda: _no_drift(project, connection))
        )
    return checks


def _check(name: str, run: Callable[[], str]) -> Check:
    try:
        return name, True, run()
    except Exception as exc:  # a failing check is a result, reported with its cause
        return name, False, describe(exc)


def _round_trip(project: Project, connection: Connection) -> str:
    history = [info.revision for info in alembic_ops.pending(project, None)]
    for revision in history:
        alembic_ops.upgrade(project, connection, revision)
        alembic_ops.downgrade(project, connection, _below(history, revision))
        alembic_ops.upgrade(project, connection, revision)
        reached = alembic_ops.current(project, connection)
        connection.rollback()  # Alembic must find no transaction open (CONCURRENTLY needs none)
        if reached != revision:
            raise RuntimeError(f"{revision} did not come back after its downgrade")
    return f"{len(history)} revisions"


def _declarations(project: Project) -> str:
    revisions = alembic_ops.pending(project, None)
    declared = sum(len(declared_equivalents(info.path)) for info in revisions)
    return f"{declared} earlier text(s) declared equivalent"


def _below(history: list[str], revision: str) -> str | None:
    index = history.index(revision)
    return history[index - 1] if index else None


def _no_drift(project: Project, connection: Connection) -> str:
    alembic_ops.check_models(project, connection)
    return "no differences"
