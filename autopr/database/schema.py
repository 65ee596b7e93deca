"""What the running code expects of the database: its revision history and its mapped columns."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, inspect

from autopr.database.models import Base

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(Config(str(ALEMBIC_INI)))


def code_heads() -> tuple[str, ...]:
    """The head revisions of the schema history this code ships."""
    return tuple(_script().get_heads())


@cache
def _known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _script().walk_revisions())


def is_known_revision(revision: str) -> bool:
    """Whether every head in ``revision`` (comma-separated) is in this code's history."""
    return all(head in _known_revisions() for head in revision.split(","))


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
