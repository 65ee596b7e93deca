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
from contextlib import contextmanager
from typing import Any

from alembic.config import Config
from sqlalchemy import Connection, Engine, event

from autopr_migrate.targets.project import Project

# Alembic's `op` and `context` are process-wide proxies: two migrations running in threads of
# one process would overwrite each other's. Runs on different targets in one process take turns.
ALEMBIC = threading.Lock()

RevisionCallback = Callable[[str, str, bool], None]


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
    project: Project, *, connection: Connection | None = None, **attributes: Any
) -> Config:
    """An Alembic config for the project's history, bound to ``connection`` if given."""
    config = Config(str(project.config_file)) if project.config_file else Config()
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
        config.attributes["connection"] = connection
    config.attributes.update(attributes)
    return config


@contextmanager
def running_env_py(
    project: Project, url: str = "", session: Mapping[str, str] | None = None
) -> Iterator[None]:
    """One history at a time in this process, with the environment its ``env.py`` reads, and
    ``session``: variables every connection it opens inherits (the run's timeouts)."""
    wanted = [(name, value.replace("{url}", url)) for name, value in project.environment]
    wanted += list((session or {}).items())
    with ALEMBIC:
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


def url_of(connection: Connection) -> str:
    return connection.engine.url.render_as_string(hide_password=False)


_VERSION_WRITTEN = re.compile(r"(?:SET version_num\s*=\s*|VALUES\s*\()'([^']+)'", re.IGNORECASE)


@contextmanager
def version_writes(project: Project, written: Callable[[str], None]) -> Iterator[None]:
    """Hear each revision Alembic records in the project's version table, on any connection of
    this process (an ``env.py`` may open its own): the end of that revision's ``upgrade()``."""

    def listen(_conn, _cursor, statement: str, *_: Any) -> None:
        if project.version_table in statement and (found := _VERSION_WRITTEN.search(statement)):
            written(found.group(1))

    event.listen(Engine, "after_cursor_execute", listen)
    try:
        yield
    finally:
        event.remove(Engine, "after_cursor_execute", listen)
