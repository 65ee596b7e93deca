"""The one place in ``flows`` that calls Alembic: one function per operation.

Each builds a ``Config`` from the project's ``alembic.ini``; operations that touch a database
hand our own ``Connection`` to ``env.py`` through ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from autopr.database.schema import ALEMBIC_INI, database_revision


def make_config(*, connection: Connection | None = None) -> Config:
    """An Alembic config for this project's history, bound to ``connection`` if given."""
    config = Config(str(ALEMBIC_INI))
    config.attributes["configure_logger"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(make_config())


def heads() -> list[str]:
    """The head revisions of the history this code ships."""
    return list(script_directory().get_heads())


def current(connection: Connection) -> str | None:
    """The revision the database is at, ``None`` at base."""
    return database_revision(connection)


def pending(current_revision: str | None, target: str = "heads") -> list[tuple[str, str]]:
    """``(revision, message)`` for each revision an upgrade to ``target`` would run, in order."""
    script = script_directory()
    revisions = script.iterate_revisions(target, current_revision or "base")
    return [(rev.revision, rev.doc or "") for rev in reversed(list(revisions))]
