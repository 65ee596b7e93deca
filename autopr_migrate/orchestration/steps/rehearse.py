"""The rehearsal as a task run, and its impact report as an artifact."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from autopr_migrate.analysis.model import LintReport
from autopr_migrate.operations.impact import ImpactReport, gate_impact, impact_of
from autopr_migrate.operations.preflight import PreflightReport
from autopr_migrate.operations.rehearse import Rehearsal
from autopr_migrate.operations.rehearse import rehearse as rehearse_on_a_copy
from autopr_migrate.orchestration.steps.report import Report
from autopr_migrate.policy.parameters import ImpactPolicy, RehearsalPolicy
from autopr_migrate.targets.targets import Target


@task(name="rehearse", cache_policy=NO_CACHE)
def rehearse(
    target: Target,
    checks: PreflightReport,
    policy: RehearsalPolicy,
    impact: ImpactPolicy | None = None,
    report: LintReport | None = None,
) -> Rehearsal:
    """On a copy; under the impact policy's workload on the tables the lint ``report`` names."""
    return rehearse_on_a_copy(
        target,
        checks,
        policy,
        impact=impact,
        tables=report.tables if report else [],
        log=get_run_logger(),
    )


def impact_for_approval(
    target: Target,
    report: Report,
    rehearsal: Rehearsal,
    findings: LintReport | None,
    policy: ImpactPolicy,
) -> ImpactReport:
    """The rehearsal's impact report: published, kept for the run's report and ledger, and
    gated by the budget (``over_budget = refuse`` stops the run here)."""
    impact = impact_of(rehearsal, findings, policy)
    publish_impact(target, impact)
    report.impact["rehearsal"] = impact.to_json()
    gate_impact(impact, policy)
    return impact


def publish_impact(target: Target, impact: ImpactReport) -> None:
    """The artifact ``rehearsal-impact-<target>`` and a log line."""
    lines = impact.lines()
    get_run_logger().info("%s", " / ".join(line.replace("**", "") for line in lines))
    create_table_artifact(
        table=impact.rows() if impact.measured else [{"statement": lines[0]}],
        key=f"rehearsal-impact-{target.name}",
        description=" ".join(lines)[:500],
    )
