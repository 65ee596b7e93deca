"""``autopr-migrate plan``: what a migrate run would ask approval for, without running it."""

from __future__ import annotations

from autopr_migrate.operations.approval_text import ChangeApproval
from autopr_migrate.operations.plan import build_plan
from autopr_migrate.operations.preflight import preflight
from autopr_migrate.operations.risk import lint_plan, risk_of
from autopr_migrate.orchestration.steps.approval import deadline_for
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.targets.targets import Target


def approval_text_for(
    target: Target, revision: str, *, policy: MigrationPolicy | None = None
) -> str:
    """The approval text for upgrading ``target`` to ``revision``; nothing is changed."""
    policy = policy or MigrationPolicy()
    checks = preflight(target, revision, policy)
    if checks.nothing_to_do:
        return f"target {target.name} is already at {checks.current}: nothing to do\n"
    plan = build_plan(target, checks)
    risk = risk_of(lint_plan(target, checks, plan), unknown_sql=plan.planned.unknown)
    request = ChangeApproval(target, plan, checks, "", deadline_for(policy.approval), risk)
    return request.text()
