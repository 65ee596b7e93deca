"""The history commands for the default project (the one ``AUTOPR_ALEMBIC_CONFIG`` names)."""

from __future__ import annotations

from typing import Any

from alembic.config import Config

from autopr_migrate.history import commands, runtime
from autopr_migrate.history.commands import RevisionInfo
from autopr_migrate.targets.project import default_project


def heads() -> list[str]:
    return commands.heads(default_project())


def pending(current: str | None, target: str = "heads") -> list[RevisionInfo]:
    return commands.pending(default_project(), current, target)


def make_config(**attributes: Any) -> Config:
    return runtime.make_config(default_project(), **attributes)


def render_sql(dialect: str, current: str | None, target: str) -> str:
    return commands.render_sql(default_project(), dialect, current, target)
