"""The plan as a task run, stored as the Markdown artifact ``migration-plan-<target>``."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from autopr_migrate.model import Risk
from autopr_migrate.operations.plan import Plan, build_plan
from autopr_migrate.operations.preflight import PreflightReport
from autopr_migrate.targets.targets import Target


@task(name="plan-migration", cache_policy=NO_CACHE)
def plan_migration(target: Target, checks: PreflightReport, risk: Risk | None = None) -> Plan:
    plan = build_plan(target, checks, risk)
    create_markdown_artifact(
        markdown=plan.markdown,
        key=f"migration-plan-{target.name}",
        description=f"{checks.current or 'base'} -> {checks.target_revision} on {target.name}",
    )
    get_run_logger().info(
        "plan: %d revision(s), %d lines of %s SQL",
        len(checks.revisions),
        plan.sql.count("\n"),
        target.dialect,
    )
    return plan
