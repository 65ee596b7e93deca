"""The plan's risk: its PostgreSQL SQL linted against live table sizes, and the rehearsal.

The risk level leads the approval text, decides whether approval may be skipped, and blocks a
``critical`` plan unless the policy overrides it with a reason.
"""

from __future__ import annotations

import logging

from autopr_migrate.analysis.analyzer import LintError, analyze
from autopr_migrate.analysis.catalog import column_facts, session_is_utc, table_stats
from autopr_migrate.analysis.lint import lint_sql
from autopr_migrate.analysis.model import LintReport, worst
from autopr_migrate.backends.connections import connect
from autopr_migrate.errors import PreflightRefused, RenderFailed
from autopr_migrate.model import Risk
from autopr_migrate.operations.impact import ImpactReport
from autopr_migrate.operations.plan import Plan, planned_sql
from autopr_migrate.operations.preflight import PreflightReport
from autopr_migrate.operations.rehearse import Rehearsal
from autopr_migrate.policy.parameters import RiskPolicy
from autopr_migrate.targets.targets import Target

LOG = logging.getLogger(__name__)


def lint_plan(
    target: Target,
    checks: PreflightReport,
    plan: Plan | None = None,
    *,
    log: logging.Logger | logging.LoggerAdapter = LOG,
) -> LintReport | None:
    """Findings for the plan's PostgreSQL SQL, sized against the target's tables.

    The SQL is ``plan``'s when it is PostgreSQL (it may hold statements recorded on a copy),
    else rendered offline; a revision whose SQL is unknown is not in it (``risk_of`` says so).
    None when the SQL cannot be analyzed: the risk is then unknown (and needs approval).
    """
    try:
        report = _lint(target, checks, plan)
    except (LintError, RenderFailed) as exc:
        log.warning("lint could not analyze the plan: %s", exc)
        return None
    log.info(
        "lint: risk %s, %d finding(s) in %d statement(s)%s",
        report.level,
        len(report.findings),
        len(report.statements),
        "" if report.sizes_known else " (table sizes unknown)",
    )
    return report


def _lint(target: Target, checks: PreflightReport, plan: Plan | None) -> LintReport:
    if plan is not None and plan.planned.dialect == "postgresql":
        planned = plan.planned
    else:
        planned = planned_sql(target, checks, dialect="postgresql")
    sql = planned.text
    names = {table for statement in analyze(sql).statements for table in statement.tables}
    with connect(target) as connection:
        sizes, columns = table_stats(connection, names), column_facts(connection, names)
        utc = session_is_utc(connection)
    report = lint_sql(
        sql,
        sizes=sizes,
        columns=columns,
        flow_sets_timeouts=True,
        utc_session=utc,
        version_table=target.project.version_table,
    )
    report.unread_revisions = planned.unknown
    if checks.operation == "downgrade":
        # Data a downgrade drops is gone for good unless a backup brings it back.
        for finding in report.findings:
            if finding.rule == "data-loss":
                finding.level = worst([finding.level, "high"])
    return report


def finding_rows(report: LintReport) -> list[dict]:
    """One row per finding, for a table: the statement, its lock, tables and SQL."""
    return [_row(report, finding) for finding in report.findings] or [
        {"level": "low", "finding": "no findings"}
    ]


def _row(report: LintReport, finding) -> dict:
    statement = report.statements[finding.statement - 1]
    return {
        "statement": finding.statement,
        "level": finding.level,
        "rule": finding.rule,
        "lock": statement.lock or "",
        "tables": ", ".join(dict.fromkeys(statement.tables)),
        "finding": finding.message,
        "suggestion": finding.suggestion,
        "sql": statement.summary,
    }


def risk_of(
    report: LintReport | None,
    rehearsal: Rehearsal | None = None,
    unknown_sql: list[str] | tuple[str, ...] = (),
    impact: ImpactReport | None = None,
) -> Risk:
    """The approval text's risk section: the level, the rehearsal, the application's impact,
    the worst findings.

    A revision whose SQL is unknown (``unknown_sql``), an impact over the budget, or a lock
    PostgreSQL took that the analyzer did not predict makes the risk at least high: a person
    reads it and decides, whatever the approval mode.
    """
    if report is None:
        level, lines = "unknown", ["the SQL could not be analyzed: read it before approving"]
    elif not report.findings:
        level, lines = "low", ["no findings: no blocking locks, rewrites or data loss"]
    else:
        level = report.level
        lines = [
            f"**{f.level}** {f.rule} (statement {f.statement}): {f.message}"
            for f in report.worst_findings(3)
        ]
        if len(report.findings) > len(lines):
            lines.append(
                f"{len(report.findings) - len(lines)} more finding(s) in the lint artifact"
            )
        lines += report.notes
    if rehearsal is not None and level != "unknown":
        if rehearsal.failed:
            level = worst([level, "high"])
        elif rehearsal.reversible is False:
            level = worst([level, "medium"])
    unlinted = [r for r in (report.unread_revisions if report else []) if r not in unknown_sql]
    if unlinted:
        level = "high" if level == "unknown" else worst([level, "high"])
        lines = [
            f"**not linted: {', '.join(unlinted)}**: their SQL was recorded on a copy of this "
            f"database, which lint (PostgreSQL SQL) cannot read; read it before approving",
            *lines,
        ]
    if unknown_sql:
        level = "high" if level == "unknown" else worst([level, "high"])
        lines = [
            f"**SQL unknown for revision{'s' if len(unknown_sql) > 1 else ''} "
            f"{', '.join(unknown_sql)}**: not renderable offline, not recorded on a copy; "
            f"read the code before approving",
            *lines,
        ]
    application: tuple[str, ...] = ()
    if impact is not None:
        application = tuple(impact.lines())
        mismatched = [m for m in impact.mismatches if m.level == "high"]
        lines = [
            *(
                f"**high** lock-mismatch"
                f"{f' (statement {m.statement})' if m.statement else ''}: {m.message}"
                for m in mismatched
            ),
            *lines,
            *(f"low lock-mismatch: {m.message}" for m in impact.mismatches if m.level != "high"),
        ]
        if impact.over_budget or mismatched:
            level = "high" if level == "unknown" else worst([level, "high"])
        elif impact.missing and level != "unknown":
            level = worst([level, "medium"])
    return Risk(level, lines, rehearsal.line() if rehearsal else None, application)


def gate(
    report: LintReport | None,
    policy: RiskPolicy,
    *,
    log: logging.Logger | logging.LoggerAdapter = LOG,
) -> None:
    """Refuse a critical plan unless the policy overrides it with a reason."""
    if report is None or report.level != "critical":
        return
    if policy.allow_critical and policy.override_reason.strip():
        log.warning("critical risk overridden: %s", policy.override_reason)
        return
    worst = report.worst_findings(1)[0]
    raise PreflightRefused(
        f"the plan's risk is critical ({worst.rule}: {worst.message}); rewrite the migration "
        f"({worst.suggestion}), or set policy.risk.allow_critical with an override_reason"
    )
