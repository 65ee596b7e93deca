"""``autopr-migrate lint``: the risk of revisions, or of any PostgreSQL SQL, without a database.

The exit code is the level and nothing else: 0 low, 1 medium, 2 high, 3 critical. Anything
that is not a level has a code of its own (``ExitCode``, in ``errors.py``), so a CI gate that reads
``< 2`` as "go" can never pass a crash or input that was not read. Table sizes are unknown
here, so levels assume tables of middling size.
"""

from __future__ import annotations

import json

from autopr_migrate.analysis.analyzer import LintError
from autopr_migrate.analysis.lint import lint_sql
from autopr_migrate.analysis.model import LEVELS, LintReport
from autopr_migrate.errors import ConfigurationError, MigrationError, RenderFailed, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.targets.project import Project


def lint_revisions(project: Project, start: str | None, end: str) -> LintReport:
    """Lint what upgrading from ``start`` (None: base) to ``end`` runs, as the flow runs it.

    Raises:
        ConfigurationError: a revision is empty, unknown or ambiguous, or the range is empty
            or runs downwards.
        LintError: a revision cannot be rendered as SQL offline.
    """
    for option, spec in (("--from", start), ("--to", end)):
        if spec is not None and not spec.strip():
            raise ConfigurationError(f"{option} is empty: name a revision, or leave it out")
    start, end = (
        alembic_ops.identify(project, spec)
        if spec and spec not in ("base", "head", "heads")
        else spec
        for spec in (start, end)
    )
    _refuse_reversed_range(project, start, end)
    try:
        sql = alembic_ops.render_sql(project, "postgresql", start, end)
    except RenderFailed as exc:
        raise _unrenderable(exc) from None
    except MigrationError:
        raise
    except Exception as exc:  # a revision's own code failed while rendering
        raise _unrenderable(exc) from None
    return lint_sql(sql, flow_sets_timeouts=True, version_table=project.version_table)


def _unrenderable(exc: Exception) -> LintError:
    return LintError(
        f"the revisions could not be rendered as SQL offline ({describe(exc)[:200]}); a revision "
        f"that reads the database (op.get_bind(), inspect()) cannot be linted offline: lint the "
        f"range around it, or lint its SQL with --sql"
    )


def _refuse_reversed_range(project: Project, start: str | None, end: str) -> None:
    """A range that runs downwards is a mistake, not "low risk". (``--from`` equal to ``--to``
    is a change with no new revision: nothing to lint, and low.)"""
    goal = alembic_ops.resolve(project, end, start) if end in ("head", "heads") else end
    if goal in ("base", None):
        raise ConfigurationError("--to base runs nothing: name a revision above --from")
    if start in ("head", "heads"):
        start = alembic_ops.resolve(project, start, None)
    if start in (None, "base") or start in alembic_ops.ancestors(project, goal):
        return
    raise ConfigurationError(f"--from {start} is not below --to {goal}: the range runs downwards")


def decode_sql(data: bytes) -> str:
    """SQL text from bytes, refusing what is not text: a NUL would end the parser's input early.

    Raises:
        LintError: a NUL byte, bytes that are not UTF-8, or no statement at all.
    """
    nul = data.find(b"\x00")
    if nul >= 0:
        raise LintError(
            f"the input holds a NUL byte at offset {nul}: it is not SQL text (a binary "
            f"file?); nothing was linted"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LintError(
            f"the input is not UTF-8 text (byte {exc.start} is not valid); save the SQL as UTF-8"
        ) from None
    return text


def lint_text(sql: str, *, assume_lock_timeout: bool = False) -> LintReport:
    """Lint any SQL text; an input without a single statement is refused, not rated low.

    Raises:
        LintError: not PostgreSQL SQL, or no statement at all.
    """
    report = lint_sql(sql, flow_sets_timeouts=assume_lock_timeout)
    if not report.statements:
        raise LintError("the input holds no SQL statement: nothing was linted")
    return report


def exit_code_of(report: LintReport) -> int:
    return LEVELS.index(report.level)


def render_report(report: LintReport, fmt: str) -> str:
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
            f"         {finding.suggestion}",
        ]
    lines += report.notes
    unknown = "" if report.sizes_known else "; table sizes unknown"
    lines.append(
        f"risk: {report.level.upper()} ({len(report.findings)} finding(s) in "
        f"{len(report.statements)} statement(s){unknown})"
    )
    return "\n".join(lines)
