"""The plan's lint as a task run, stored as the table artifact ``migration-lint-<target>``."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from autopr_migrate.analysis.model import LintReport
from autopr_migrate.operations import risk
from autopr_migrate.operations.plan import Plan
from autopr_migrate.operations.preflight import PreflightReport
from autopr_migrate.targets.targets import Target


@task(name="lint", cache_policy=NO_CACHE)
def lint_plan(
    target: Target, checks: PreflightReport, plan: Plan | None = None
) -> LintReport | None:
    report = risk.lint_plan(target, checks, plan, log=get_run_logger())
    if report is not None:
        create_table_artifact(
            table=risk.finding_rows(report),
            key=f"migration-lint-{target.name}",
            description=f"risk {report.level}: {len(report.findings)} finding(s)",
        )
    return report
