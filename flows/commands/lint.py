"""``autopr-migrate lint``: the risk of revisions, or of any PostgreSQL SQL, without a database.

Exit codes say the level: 0 low, 1 medium, 2 high, 3 critical; 65 when the SQL is not
PostgreSQL. Table sizes are unknown here, so levels assume tables of middling size.
"""

from __future__ import annotations

import json

from flows import alembic_ops
from flows.lint.lint import lint_sql
from flows.lint.model import LEVELS, LintReport

EXIT_NOT_SQL = 65


def lint_revisions(start: str | None, end: str) -> LintReport:
    """Lint what upgrading from ``start`` (None: base) to ``end`` runs, as the flow runs it."""
    sql = alembic_ops.render_sql("postgresql", start, end)
    return lint_sql(sql, flow_sets_timeouts=True)


def lint_text(sql: str, *, assume_lock_timeout: bool = False) -> LintReport:
    return lint_sql(sql, flow_sets_timeouts=assume_lock_timeout)


def exit_code(report: LintReport) -> int:
    return LEVELS.index(report.level)


def render(report: LintReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.to_json(), indent=2)
    lines = []
    for finding in report.findings:
        statement = report.statements[finding.statement - 1]
        also = f" (also {', '.join(finding.also)})" if finding.also else ""
        lines += [
            f"{finding.level.upper():8} {finding.rule}{also}: statement {finding.statement}, "
            f"line {statement.line + 1}, lock {statement.lock or 'none'}",
            f"         {statement.summary}",
            f"         {finding.message}",
            f"         see {finding.suggestion}",
        ]
    lines += report.notes
    unknown = "" if report.sizes_known else "; table sizes unknown"
    lines.append(f"risk: {report.level.upper()} ({len(report.findings)} finding(s) in "
                 f"{len(report.statements)} statement(s){unknown})")  # fmt: skip
    return "\n".join(lines)
