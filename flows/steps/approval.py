"""Approval before anything changes. Today the policy approves; an operator pause replaces it."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.steps.plan import Plan


@dataclass(frozen=True)
class Approval:
    approved: bool
    approver: str
    reason: str


@task(name="request-approval", cache_policy=NO_CACHE)
def request_approval(plan: Plan) -> Approval:
    """Decide whether ``plan`` may run."""
    approval = Approval(True, "policy", "no operator approval is configured for this target")
    get_run_logger().info(
        "approved by %s: %s -> %s (%s)",
        approval.approver, plan.current or "base", plan.target_revision, approval.reason,
    )  # fmt: skip
    return approval
