"""Lint a migration's PostgreSQL SQL: our analyzer and squawk, sized against the live tables."""

from __future__ import annotations

from autopr_migrate.analysis.analyzer import ANALYZED_KINDS, Analysis, analyze
from autopr_migrate.analysis.model import Finding, LintReport, Statement, TableStats
from autopr_migrate.analysis.rules import RULES
from autopr_migrate.analysis.squawk import OWN_LEVELS, SAME_AS_OURS, SquawkViolation, run_squawk
from autopr_migrate.analysis.walk import ColumnFact, Hit

# What a safe operation's own sub-step does not need telling, for exactly the statements it
# renders: the concurrent builds and drops rebuild or drop an INVALID leftover; a backfill's
# whole (offline) runs in batches online.
HANDLED_BY = {
    "non-transactional": {
        ("safe.create_index", "build", "IndexStmt"),
        ("safe.add_unique", "build", "IndexStmt"),
        ("safe.drop_index", "drop", "DropStmt"),
    },
    "unbatched-backfill": {
        ("safe.backfill", "whole", "UpdateStmt"),
        ("safe.backfill", "whole", "InsertStmt"),
    },
    # the check set_not_null added a moment before, and drops once NOT NULL holds
    "squawk:ban-drop-constraint": {("safe.set_not_null", "drop check", "AlterTableStmt")},
}


def lint_sql(
    sql: str,
    *,
    sizes: dict[str, TableStats] | None = None,
    columns: dict[tuple[str, str], ColumnFact] | None = None,
    flow_sets_timeouts: bool = False,
    squawk: bool = True,
    utc_session: bool = False,
    version_table: str = "alembic_version",
) -> LintReport:
    """Findings and a risk level for ``sql``.

    Args:
        sizes: the live tables' sizes; None when linting without a database (sizes unknown).
        columns: the live columns' types and nullability; None offline (then unknown).
        flow_sets_timeouts: the SQL runs under the migrate flow, which sets ``lock_timeout``.
        utc_session: the session that runs it is in UTC (PostgreSQL then converts between
            ``timestamp`` and ``timestamptz`` without a rewrite).
        version_table: the table the history records its revision in (bookkeeping).
    """
    analysis = analyze(
        sql,
        lock_timeout_in_force=flow_sets_timeouts,
        columns=columns,
        utc_session=utc_session,
        version_table=version_table,
    )
    findings: list[Finding] = []
    for hit in analysis.hits:
        rule = RULES[hit.rule]
        statement = analysis.statements[hit.statement - 1]
        step = (statement.safe_operation, statement.safe_step, statement.kind)
        if step in HANDLED_BY.get(rule.name, ()):
            continue
        stats = _stats(hit.table, sizes, analysis)
        where = f" ({hit.table}: {stats.describe()})" if stats else ""
        message = f"{hit.detail + ': ' if hit.detail else ''}{rule.what}{where}"
        findings.append(
            Finding(
                hit.statement,
                rule.name,
                rule.level(_tier(hit, sizes, analysis)),
                message,
                rule.suggestion,
            )
        )
    notes: list[str] = []
    if squawk:
        try:
            violations = run_squawk(sql, flow_sets_timeouts=flow_sets_timeouts)
        except (OSError, RuntimeError) as exc:
            notes.append(f"squawk did not run ({exc}); these are our analyzer's findings only")
        else:
            _merge_squawk(findings, analysis, violations, sizes)
    findings.sort(key=lambda f: (f.statement, f.rule))
    return LintReport(analysis.statements, findings, sizes or {}, sizes is not None, notes)


def _stats(
    table: str | None, sizes: dict[str, TableStats] | None, analysis: Analysis
) -> TableStats | None:
    if not table or not sizes or table in analysis.created:
        return None
    return sizes.get(analysis.sources.get(table, table))


def _tier(hit: Hit, sizes: dict[str, TableStats] | None, analysis: Analysis) -> str:
    if hit.tier is not None:
        return hit.tier
    if hit.table in analysis.created:
        return "empty"
    stats = _stats(hit.table, sizes, analysis)
    return stats.tier if stats else "unknown"


def _merge_squawk(
    findings: list[Finding],
    analysis: Analysis,
    violations: list[SquawkViolation],
    sizes: dict[str, TableStats] | None,
) -> None:
    for violation in violations:
        statement = _statement_at(analysis.statements, violation.line)
        ours = SAME_AS_OURS.get(violation.rule, ())
        same = [f for f in findings if f.statement == statement.number and f.rule in ours]
        if same:
            for finding in same:
                finding.also.append(f"squawk:{violation.rule}")
            continue
        table = statement.tables[0] if statement.tables else None
        if ours and statement.kind in ANALYZED_KINDS:
            level = "low"  # our analyzer reads this statement and found no such problem
        elif ours:
            level = RULES[ours[0]].level(
                _tier(Hit(statement.number, ours[0], table), sizes, analysis)
            )
        else:
            level = OWN_LEVELS.get(violation.rule, "low")
        step = (statement.safe_operation, statement.safe_step, statement.kind)
        if step in HANDLED_BY.get(f"squawk:{violation.rule}", ()):
            continue
        findings.append(
            Finding(
                statement.number,
                f"squawk:{violation.rule}",
                level,
                f"{violation.message} {violation.help}".strip(),
                RULES["squawk"].suggestion,
                source="squawk",
            )
        )


def _statement_at(statements: list[Statement], line: int) -> Statement:
    candidates = [s for s in statements if s.line <= line]
    return candidates[-1] if candidates else statements[0]
