"""How a project's ``env.py`` is run: its ``Config``, its environment, one history at a time.

Alembic's ``op`` and ``context`` are process-wide proxies, so two migrations running in threads
of one process would overwrite each other's: every command that runs ``env.py`` holds
``ALEMBIC``. Revisions applied are heard from the version table's writes, on whatever
connection ``env.py`` uses.
"""

from __future__ import annotations

import argparse
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic.config import Config
from sqlalchemy import URL, Connection, Engine, event, make_url

from autopr_migrate.targets.project import Project

# Alembic's `op` and `context` are process-wide proxies: two migrations running in threads of
# one process would overwrite each other's. Runs on different targets in one process take turns.
ALEMBIC = threading.Lock()

RevisionCallback = Callable[[str, str, bool], None]

# Listeners on the Engine class are installed once: adding and removing them while another
# thread connects mutates the list SQLAlchemy is iterating ("deque mutated during iteration").
# Each one calls the hooks active at that moment, a tuple replaced (never changed) under a lock.
_EVENTS = ("engine_connect", "before_cursor_execute", "after_cursor_execute")
_HOOKS: dict[str, tuple[Callable[..., None], ...]] = {name: () for name in _EVENTS}
_HOOKS_LOCK = threading.Lock()


def _dispatcher(name: str) -> Callable[..., None]:
    def dispatch(*arguments: Any) -> None:
        for hook in _HOOKS[name]:
            hook(*arguments)

    return dispatch


for _name in _EVENTS:
    event.listen(Engine, _name, _dispatcher(_name))


@contextmanager
def engine_hook(name: str, hook: Callable[..., None]) -> Iterator[None]:
    """``hook`` hears the Engine event ``name`` of every engine of this process for the block."""
    with _HOOKS_LOCK:
        _HOOKS[name] = (*_HOOKS[name], hook)
    try:
        yield
    finally:
        with _HOOKS_LOCK:
            _HOOKS[name] = tuple(h for h in _HOOKS[name] if h is not hook)


@dataclass(frozen=True)
class SessionSettings:
    """What every session ``env.py`` opens while it runs must carry (the run's timeouts).

    ``environment`` is inherited by drivers that read it (libpq's ``PGOPTIONS``);
    ``statements`` run on every connection a SQLAlchemy engine of this process hands out
    meanwhile, keyed by dialect name, so any driver's sessions carry them.
    """

    environment: Mapping[str, str] = field(default_factory=dict)
    statements: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def version_callback(on_revision: RevisionCallback | None) -> Callable[..., None] | None:
    if on_revision is None:
        return None

    def on_version_apply(*, step: Any, **_: Any) -> None:
        revision = step.up_revision_id if step.is_upgrade else step.down_revision_ids
        if isinstance(revision, tuple):
            revision = ",".join(revision) or "base"
        on_revision(str(revision), (step.up_revision.doc or "").strip(), step.is_upgrade)

    return on_version_apply


def make_config(
    project: Project, *, connection: Connection | None = None, url: str = "", **attributes: Any
) -> Config:
    """An Alembic config for the project's history, bound to ``connection`` if given.

    ``sqlalchemy.url`` is the target's (``url``, else the connection's): the stock ``env.py``
    builds its engine from it.
    """
    config = Config(str(project.config_file)) if project.config_file else Config()
    url = url or (url_of(connection) if connection is not None else "")
    if url:
        option = project_value(project.sqlalchemy_url, url)
        config.set_main_option("sqlalchemy.url", option.replace("%", "%%"))
    if project.script_location:
        config.set_main_option("script_location", project.script_location)
    if project.version_locations:
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", os.pathsep.join(project.version_locations))
    if project.x_arguments:
        config.cmd_opts = argparse.Namespace(x=list(project.x_arguments))
    config.attributes["configure_logger"] = False
    config.attributes["version_table"] = project.version_table
    config.attributes["version_table_schema"] = project.version_table_schema
    if connection is not None:
        config.attributes["connection"] = _connectable(connection)
    config.attributes.update(attributes)
    return config


@contextmanager
def running_env_py(
    project: Project, url: str = "", session: SessionSettings | None = None
) -> Iterator[None]:
    """One history at a time in this process, with the environment its ``env.py`` reads, and
    ``session``: what every connection it opens carries (the run's timeouts)."""
    session = session or SessionSettings()
    wanted = [(name, project_value(value, url)) for name, value in project.environment]
    wanted += list(session.environment.items())
    with ALEMBIC, _every_new_session_runs(session.statements, url):
        saved = {name: os.environ.get(name) for name, _ in wanted}
        for name, value in wanted:
            os.environ[name] = value
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


_URL_WITH_DRIVER = re.compile(r"\{url:([A-Za-z0-9_+]+)\}")


def project_value(value: str, url: str) -> str:
    """A project's environment value with ``{url}`` (the target's URL) and ``{url:DRIVER}``
    (the same URL with another driver, ``{url:postgresql+asyncpg}``) filled in."""

    def with_driver(match: re.Match[str]) -> str:
        if not url:
            return f"{match.group(1)}://"
        return make_url(url).set(drivername=match.group(1)).render_as_string(hide_password=False)

    return _URL_WITH_DRIVER.sub(with_driver, value.replace("{url}", url))


@contextmanager
def _every_new_session_runs(statements: Mapping[str, tuple[str, ...]], url: str) -> Iterator[None]:
    """``statements`` on each connection to the database at ``url`` handed out meanwhile (a
    connection of this process to any other database is left alone)."""
    if not statements or not url:
        yield
        return
    database = _database_of(make_url(url))

    def apply(connection: Connection) -> None:
        wanted = statements.get(connection.dialect.name, ())
        if not wanted or _database_of(connection.engine.url) != database:
            return
        raw = connection.connection.dbapi_connection
        cursor = raw.cursor()
        try:
            for statement in wanted:
                cursor.execute(statement)
        finally:
            cursor.close()
        raw.commit()

    with engine_hook("engine_connect", apply):
        yield


def _database_of(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return str(Path(url.database or "").resolve()) if url.database else ""
    return url.database or ""


def _connectable(connection: Connection) -> Connection:
    """The connection, also answering ``.connect()`` with itself: many an ``env.py`` (the
    cookbook's 1.x pattern, JupyterHub's, MLflow's) treats what it is handed as connectable
    (``with connectable.connect() as connection``), which a SQLAlchemy 2 ``Connection`` is not."""
    if not hasattr(connection, "connect"):
        connection.connect = lambda: nullcontext(connection)  # type: ignore[attr-defined]
    return connection


def url_of(connection: Connection) -> str:
    return connection.engine.url.render_as_string(hide_password=False)


_VERSION_WRITTEN = re.compile(r"(?:SET version_num\s*=\s*|VALUES\s*\()'([^']+)'", re.IGNORECASE)


def on_version_table(project: Project, statement: str) -> bool:
    """Whether ``statement`` is Alembic's bookkeeping on the project's version table (and not
    a statement on a table whose name merely contains it)."""
    table = re.escape(project.version_table)
    pattern = (
        r"^\s*(?:CREATE\s+TABLE|INSERT\s+INTO|UPDATE|DELETE\s+FROM|DROP\s+TABLE)\s+"
        rf'(?:"?\w+"?\.)?"?{table}"?(?=[\s(]|$)'
    )
    return re.match(pattern, statement, re.IGNORECASE) is not None


def version_written(project: Project, statement: str) -> str | None:
    """The revision ``statement`` records in the project's version table, if it records one."""
    if not on_version_table(project, statement):
        return None
    found = _VERSION_WRITTEN.search(statement)
    return found.group(1) if found else None


@contextmanager
def version_writes(project: Project, written: Callable[[str], None]) -> Iterator[None]:
    """Hear each revision Alembic records in the project's version table, on any connection of
    this process (an ``env.py`` may open its own): the end of that revision's ``upgrade()``."""

    def listen(_conn, _cursor, statement: str, *_: Any) -> None:
        if revision := version_written(project, statement):
            written(revision)

    with engine_hook("after_cursor_execute", listen):
        yield
