"""The plan as a task run, stored as the Markdown artifact ``migration-plan-<target>``."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from autopr_migrate.model import Risk
from autopr_migrate.operations.plan import Plan, build_plan, render_plan
from autopr_migrate.operations.preflight import PreflightReport
from autopr_migrate.targets.targets import Target


@task(name="plan-migration", cache_policy=NO_CACHE)
def plan_migration(target: Target, checks: PreflightReport) -> Plan:
    plan = build_plan(target, checks)
    planned = plan.planned
    get_run_logger().info(
        "plan: %d revision(s), %d lines of %s SQL%s%s",
        len(checks.revisions),
        plan.sql.count("\n"),
        target.dialect,
        f"; recorded on a copy: {', '.join(planned.recorded)}" if planned.recorded else "",
        f"; SQL unknown: {', '.join(planned.unknown)}" if planned.unknown else "",
    )
    return plan


@task(name="publish-plan", cache_policy=NO_CACHE)
def publish_plan(target: Target, checks: PreflightReport, plan: Plan, risk: Risk) -> None:
    create_markdown_artifact(
        markdown=render_plan(target, checks, plan, risk),
        key=f"migration-plan-{target.name}",
        description=f"{checks.current or 'base'} -> {checks.target_revision} on {target.name}",
    )
    planned = plan.planned
    if planned.recorded or planned.unknown:
        get_run_logger().info(
            "plan SQL recorded on a copy: %s; unknown: %s",
            ", ".join(planned.recorded) or "none",
            ", ".join(planned.unknown) or "none",
        )
