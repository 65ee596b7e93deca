"""Lint a migration's PostgreSQL SQL: our analyzer and squawk, sized against the live tables."""

from __future__ import annotations

from flows.lint.analyzer import ANALYZED_KINDS, analyze
from flows.lint.model import Finding, LintReport, Statement, TableStats
from flows.lint.rules import RULES
from flows.lint.squawk import OWN_LEVELS, SAME_AS_OURS, SquawkViolation, run_squawk
from flows.lint.types import narrows


def lint_sql(
    sql: str,
    *,
    sizes: dict[str, TableStats] | None = None,
    columns: dict[tuple[str, str], str] | None = None,
    flow_sets_timeouts: bool = False,
    squawk: bool = True,
) -> LintReport:
    """Findings and a risk level for ``sql``.

    Args:
        sizes: the live tables' sizes; None when linting without a database (sizes unknown).
        columns: the live columns' types, to tell a narrowing type change.
        flow_sets_timeouts: the SQL runs under the migrate flow, which sets ``lock_timeout``.
    """
    statements, hits, changes, created = analyze(sql, lock_timeout_in_force=flow_sets_timeouts)
    findings: list[Finding] = []
    for hit in hits:
        rule = RULES[hit.rule]
        tier = _tier(hit.table, sizes, created)
        where = f" ({hit.table}: {sizes[hit.table].describe()})" if sizes and hit.table in (
            sizes) else ""  # fmt: skip
        message = f"{hit.detail + ': ' if hit.detail else ''}{rule.what}{where}"
        findings.append(
            Finding(hit.statement, rule.name, rule.level(tier), message, rule.suggestion)
        )
    for change in changes:
        old = (columns or {}).get((change.table, change.column))
        if old and narrows(old, change.new_type):
            rule = RULES["data-loss"]
            findings.append(Finding(
                change.statement, rule.name, rule.level(_tier(change.table, sizes, created)),
                f"narrows {change.table}.{change.column} from {old} to {change.new_type}: values "
                f"that do not fit fail the statement or are cut; {rule.what}", rule.suggestion,
            ))  # fmt: skip
    notes: list[str] = []
    if squawk:
        try:
            violations = run_squawk(sql, flow_sets_timeouts=flow_sets_timeouts)
        except (OSError, RuntimeError) as exc:
            notes.append(f"squawk did not run ({exc}); these are our analyzer's findings only")
        else:
            _merge_squawk(findings, statements, violations, sizes, created)
    findings.sort(key=lambda f: (f.statement, f.rule))
    return LintReport(statements, findings, sizes or {}, sizes is not None, notes)


def _tier(table: str | None, sizes: dict[str, TableStats] | None, created: set[str]) -> str:
    if table in created:
        return "empty"
    if sizes is None or table not in sizes:
        return "unknown"
    return sizes[table].tier


def _merge_squawk(
    findings: list[Finding], statements: list[Statement], violations: list[SquawkViolation],
    sizes: dict[str, TableStats] | None, created: set[str],
) -> None:  # fmt: skip
    for violation in violations:
        statement = _statement_at(statements, violation.line)
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
            level = RULES[ours[0]].level(_tier(table, sizes, created))
        else:
            level = OWN_LEVELS.get(violation.rule, "low")
        findings.append(Finding(
            statement.number, f"squawk:{violation.rule}", level,
            f"{violation.message} {violation.help}".strip(), RULES["squawk"].suggestion,
            source="squawk",
        ))  # fmt: skip


def _statement_at(statements: list[Statement], line: int) -> Statement:
    candidates = [s for s in statements if s.line <= line]
    return candidates[-1] if candidates else statements[0]
