"""Model drift: what autogenerate would write if someone ran ``alembic revision --autogenerate``.

A difference at head means the models changed without a revision (or someone changed the
database by hand); either way the next deploy is in for a surprise. Each difference becomes
one readable line.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from autopr_migrate.model import TOOL_OWNED_TABLES
from autopr_migrate.targets.project import Project


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table not in TOOL_OWNED_TABLES


def model_drift(project: Project, connection: Connection) -> list[str] | None:
    """One line per difference between the project's models and the database; empty when they
    agree; None when the project declares no models."""
    metadata = project.metadata()
    if metadata is None:
        return None
    options = {
        "include_object": _include,
        "compare_type": True,
        "compare_server_default": True,
        "version_table": project.version_table,
        "version_table_schema": project.version_table_schema,
    }
    context = MigrationContext.configure(connection, opts=options)
    try:
        return [_describe(diff) for diff in _flatten(compare_metadata(context, metadata))]
    finally:
        connection.rollback()


def _flatten(diffs: list[Any]) -> list[tuple]:
    flat = []
    for diff in diffs:
        # Column modifications come as a list of tuples per column.
        flat.extend(diff if isinstance(diff, list) else [diff])
    return flat


def _describe(diff: tuple) -> str:
    kind = diff[0]
    if kind == "add_table":
        return f"table {diff[1].name} is in the models but not in the database"
    if kind == "remove_table":
        return f"table {diff[1].name} is in the database but not in the models"
    if kind == "add_column":
        return f"column {diff[2]}.{diff[3].name} is in the models but not in the database"
    if kind == "remove_column":
        return f"column {diff[2]}.{diff[3].name} is in the database but not in the models"
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint"):
        where = "models" if kind.startswith("add") else "database"
        what = "index" if kind.endswith("index") else "constraint"
        obj = diff[1]
        return f"{what} {obj.name} on {obj.table.name} is only in the {where}"
    if kind in ("add_fk", "remove_fk"):
        where = "models" if kind == "add_fk" else "database"
        constraint = diff[1]
        columns = ", ".join(column.name for column in constraint.columns)
        return (
            f"foreign key {constraint.name or '(unnamed)'} on {constraint.parent.name} "
            f"({columns}) is only in the {where}"
        )
    if kind in ("modify_type", "modify_nullable", "modify_default", "modify_comment"):
        _, _, table, column, _, database, models = diff
        attribute = kind.removeprefix("modify_")
        return (
            f"column {table}.{column}: {attribute} is {database!r} in the database, "
            f"{models!r} in the models"
        )
    return repr(diff)
