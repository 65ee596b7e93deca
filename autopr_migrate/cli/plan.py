"""``autopr-migrate plan``: what a migrate run would ask approval for, without running it."""

from __future__ import annotations

from prefect.logging import disable_run_logger

from autopr_migrate.orchestration.steps.approval import deadline_for
from autopr_migrate.orchestration.steps.approval_text import ApprovalRequest, render
from autopr_migrate.orchestration.steps.lint_plan import lint_plan, risk_of
from autopr_migrate.orchestration.steps.plan import build_plan
from autopr_migrate.orchestration.steps.preflight import preflight
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.targets.targets import Target


def plan(target: Target, revision: str, *, policy: MigrationPolicy | None = None) -> str:
    """The approval text for upgrading ``target`` to ``revision``; nothing is changed."""
    policy = policy or MigrationPolicy()
    with disable_run_logger():
        checks = preflight.fn(target, revision, policy)
    if checks.nothing_to_do:
        return f"target {target.name} is already at {checks.current}: nothing to do\n"
    with disable_run_logger():
        risk = risk_of(lint_plan.fn(target, checks, artifact=False))
    request = ApprovalRequest(target, build_plan(target, checks, risk), checks, "",
                              deadline_for(policy.approval), risk)  # fmt: skip
    return render(request)
