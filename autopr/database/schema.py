"""What the running code expects of the database: its revision history and its mapped columns."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, inspect

from autopr.database.models import Base
from autopr_migrate.targets.project import ALEMBIC_CONFIG_ENV

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def alembic_ini() -> Path:
    """The alembic.ini of the history this code runs: ours, or ``AUTOPR_ALEMBIC_CONFIG``."""
    override = os.environ.get(ALEMBIC_CONFIG_ENV, "").strip()
    return Path(override).absolute() if override else ALEMBIC_INI


def _script() -> ScriptDirectory:
    return _script_at(alembic_ini())


@cache
def _script_at(path: Path) -> ScriptDirectory:
    return ScriptDirectory.from_config(Config(str(path)))


def code_heads() -> tuple[str, ...]:
    """The head revisions of the schema history this code ships."""
    return tuple(_script().get_heads())


def is_known_revision(revision: str) -> bool:
    """Whether every head in ``revision`` (comma-separated) is in this code's history."""
    known = _known_revisions(alembic_ini())
    return all(head in known for head in revision.split(","))


@cache
def _known_revisions(path: Path) -> frozenset[str]:
    return frozenset(script.revision for script in _script_at(path).walk_revisions())


def database_revision(connection: Connection) -> str | None:
    """The revision recorded in the database, ``None`` at base; several heads joined by commas."""
    heads = MigrationContext.configure(connection).get_current_heads()
    return ",".join(sorted(heads)) or None


def schema_problems(connection: Connection, metadata: MetaData = Base.metadata) -> list[str]:
    """Every table and column the code maps but the database lacks, e.g. ``missing column t.c``."""
    inspector = inspect(connection)
    existing = set(inspector.get_table_names())
    problems: list[str] = []
    for table in metadata.sorted_tables:
        if table.name not in existing:
            problems.append(f"missing table {table.name}")
            continue
        columns = {column["name"] for column in inspector.get_columns(table.name)}
        problems.extend(
            f"missing column {table.name}.{column.name}"
            for column in table.columns
            if column.name not in columns
        )
    return problems
