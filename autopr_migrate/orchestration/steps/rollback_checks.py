"""Preflight for going back: a downgrade to a named revision, or a restore of a backup."""

from __future__ import annotations

import re

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from autopr_migrate.backends.connections import connect, invalid_indexes
from autopr_migrate.errors import ConfigurationError, PreflightRefused
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.orchestration.steps.preflight import (
    PreflightReport,
    check_backup_directory,
    database_bytes,
    refuse_changed_history,
    refuse_unfinished_runs,
)
from autopr_migrate.orchestration.steps.probe import check_health
from autopr_migrate.policy.inputs import shown
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.targets.targets import Target


@task(name="rollback-preflight", cache_policy=NO_CACHE)
def downgrade_preflight(
    target: Target, revision: str, *, confirm_base: bool, policy: MigrationPolicy
) -> PreflightReport:
    """Where the database is, where ``revision`` (``-1``, an id, a prefix, ``base``) takes it.

    The application is checked but not required healthy: it may be why we go back.
    """
    with connect(target, connect_timeout=policy.preflight.connect_timeout_seconds) as connection:
        current = alembic_ops.current(connection)
        goal = resolve_down(revision, current, confirm_base=confirm_base)
        if goal == current:
            health = check_health(target.health_url, timeout=5)
            return PreflightReport(current, goal, [], 0, 0, health, operation="downgrade")
        refuse_unfinished_runs(connection, target)
        # A downgrade runs the applied revisions' own code: it must be the code that ran.
        accepted = refuse_changed_history(connection, target, policy.risk.changed_history_reason)
        size = database_bytes(connection, target)
        broken_indexes = frozenset(invalid_indexes(connection))
    free = check_backup_directory(target, size, policy.preflight.free_space_factor)
    health = check_health(target.health_url, timeout=5)
    undone = alembic_ops.undone_by_downgrade(current, goal)
    state = "healthy" if health.healthy else f"not healthy ({health.reason})"
    get_run_logger().info("downgrade %s -> %s undoes %d revision(s); the application is %s",
                          current, goal or "base", len(undone), state)  # fmt: skip
    return PreflightReport(current, goal, undone, size, free, health, [], broken_indexes,
                           operation="downgrade", accepted_history=tuple(accepted))  # fmt: skip


def resolve_down(revision: str, current: str | None, *, confirm_base: bool) -> str | None:
    """The revision a downgrade goes to; refuse upgrades, unknown revisions, unconfirmed base."""
    if current is None:
        raise PreflightRefused("the database is at base: there is nothing to downgrade")
    if not alembic_ops.is_known(current):
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
            goal = alembic_ops.parent(goal)
        return goal
    goal = alembic_ops.resolve(spec, current)
    if goal == current:
        return current
    if goal not in alembic_ops.ancestors(current):
        raise ConfigurationError(
            f"revision {shown(spec)} ({goal}) is not below the database's {current}: the rollback "
            f"flow only goes down; use migrate to go up"
        )
    return goal
