"""Revision arithmetic: where an upgrade or a downgrade request takes a database."""

from __future__ import annotations

import re

from autopr_migrate.errors import ConfigurationError, PreflightRefused
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.policy.inputs import shown
from autopr_migrate.targets.project import Project


def upgrade_goal(project: Project, revision: str, current: str | None) -> str:
    """The revision an upgrade goes to; refuse downgrades, other branches, unknown revisions."""
    found = alembic_ops.heads(project)
    if len(found) > 1:
        raise PreflightRefused(alembic_ops.multiple_heads_advice(found))
    if current is not None and not alembic_ops.is_known(project, current):
        raise PreflightRefused(
            f"the database is at revision {current}, which this code does not know (a newer "
            f"release migrated it, or a revision file was lost); deploy the code that contains "
            f"{current} and migrate from there. Never `alembic stamp` over it"
        )
    target_revision = alembic_ops.resolve(project, revision, current)
    if target_revision == current:
        return target_revision
    if target_revision in alembic_ops.ancestors(project, current):
        raise ConfigurationError(
            f"revision {revision!r} ({target_revision}) is below the database's {current}: that "
            f"is a downgrade, and migrate only upgrades; use the rollback flow"
        )
    if current is not None and current not in alembic_ops.ancestors(project, target_revision):
        raise ConfigurationError(
            f"revision {target_revision} is not reachable by upgrading from {current} (another "
            f"branch of the history); pick a revision above {current}"
        )
    return target_revision


def downgrade_goal(
    project: Project, revision: str, current: str | None, *, confirm_base: bool
) -> str | None:
    """The revision a downgrade goes to; refuse upgrades, unknown revisions, unconfirmed base."""
    if current is None:
        raise PreflightRefused("the database is at base: there is nothing to downgrade")
    if not alembic_ops.is_known(project, current):
        raise PreflightRefused(
            f"the database is at {current}, which this code does not know: deploy the code that "
            f"contains it to downgrade, or restore a backup"
        )
    spec = (revision or "-1").strip()
    if spec == "base":
        if not confirm_base:
            raise ConfigurationError(
                "a downgrade to base drops every table and all their rows: set confirm_base "
                "to true if that is what you want"
            )
        return None
    steps = re.fullmatch(r"-(\d+)", spec)
    if steps:
        goal: str | None = current
        for _ in range(int(steps.group(1))):
            if goal is None:
                raise ConfigurationError(f"{shown(spec)} goes below base: the history is shorter")
            goal = alembic_ops.parent(project, goal)
        return goal
    goal = alembic_ops.resolve(project, spec, current)
    if goal == current:
        return current
    if goal not in alembic_ops.ancestors(project, current):
        raise ConfigurationError(
            f"revision {shown(spec)} ({goal}) is not below the database's {current}: the rollback "
            f"flow only goes down; use migrate to go up"
        )
    return goal
