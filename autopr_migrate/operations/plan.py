"""The plan: the SQL for exactly ``current:target`` in the target's dialect, and what we know.

Rendered with Alembic's offline mode, so it is the SQL the upgrade will run, revision by
revision. A revision that cannot render offline (it reads the database) is taken from what it
ran on a scratch copy (the rehearsal's; on SQLite a copy of the file made here), and is
otherwise "SQL unknown": the risk is then at least high, so a person decides. The flow stores
the plan as the Markdown artifact ``migration-plan-<target>``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from sqlalchemy.pool import NullPool

from autopr_migrate.backends.engine import make_engine
from autopr_migrate.backends.registry import backend_for
from autopr_migrate.errors import PreflightRefused, RenderFailed, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.history.commands import RevisionInfo
from autopr_migrate.model import Risk
from autopr_migrate.operations.preflight import PreflightReport
from autopr_migrate.targets.targets import Target


class SqlSource(StrEnum):
    RENDERED = "rendered"  # by Alembic offline: exactly what will run
    RECORDED = "recorded"  # executed on a scratch copy of the database, and heard
    UNKNOWN = "unknown"  # neither: a person must read the revision


@dataclass(frozen=True)
class RevisionSql:
    """One step of the plan's SQL (or, rendered in one piece, all of it)."""

    start: str | None
    goal: str | None
    revision: str  # whose upgrade() or downgrade() the step runs
    source: SqlSource
    sql: str = ""
    reason: str = ""

    def text(self, operation: str) -> str:
        if self.source == SqlSource.RENDERED:
            return self.sql
        header = f"-- Running {operation} {self.start or 'base'} -> {self.goal or 'base'}"
        if self.source == SqlSource.UNKNOWN:
            return (
                f"{header}\n\n-- SQL unknown for revision {self.revision}: it cannot be "
                f"rendered offline ({self.reason}) and was not recorded on a copy; read its "
                f"{operation}() before approving\n"
            )
        return (
            f"{header}\n\n-- recorded by running it on a scratch copy of the database (it "
            f"cannot be rendered offline: {self.reason})\n\n{self.sql}\n"
        )


@dataclass(frozen=True)
class PlannedSql:
    dialect: str
    operation: str
    steps: tuple[RevisionSql, ...]

    @property
    def text(self) -> str:
        return "\n".join(step.text(self.operation) for step in self.steps)

    @property
    def unknown(self) -> list[str]:
        return [s.revision for s in self.steps if s.source == SqlSource.UNKNOWN]

    @property
    def recorded(self) -> list[str]:
        return [s.revision for s in self.steps if s.source == SqlSource.RECORDED]


@dataclass(frozen=True)
class Plan:
    target: str
    current: str | None
    target_revision: str
    revisions: list[RevisionInfo]
    planned: PlannedSql

    @property
    def sql(self) -> str:
        return self.planned.text

    @property
    def checksums(self) -> dict[str, str]:
        return {info.revision: info.sha256 for info in self.revisions}

    def with_recorded(self, recorded: Mapping[str, str]) -> Plan:
        """The plan with each upgrade step of unknown SQL that ``recorded`` (revision -> the
        statements it ran on a scratch copy) holds filled in."""
        if self.planned.operation != "upgrade":
            return self
        steps = _filled_in(list(self.planned.steps), recorded)
        return replace(self, planned=replace(self.planned, steps=tuple(steps)))


def _filled_in(steps: list[RevisionSql], recorded: Mapping[str, str]) -> list[RevisionSql]:
    return [
        replace(step, source=SqlSource.RECORDED, sql=recorded[step.revision])
        if step.source == SqlSource.UNKNOWN and step.revision in recorded
        else step
        for step in steps
    ]


def build_plan(target: Target, checks: PreflightReport) -> Plan:
    """The SQL for exactly ``current:target``, rendered offline where Alembic can (on SQLite
    else recorded on a copy of the file), else unknown until ``with_recorded``."""
    return Plan(
        target.name,
        checks.current,
        checks.target_revision,
        checks.revisions,
        planned_sql(target, checks),
    )


def planned_sql(target: Target, checks: PreflightReport, dialect: str | None = None) -> PlannedSql:
    """The SQL the plan runs, in ``dialect`` (default: the target's), step by step."""
    dialect = dialect or target.dialect
    operation = checks.operation
    whole = (operation, checks.current, checks.target_revision)
    spans = _spans(target, checks)
    renderable = [span for span in spans if span[0] != _MERGE]
    rendered = alembic_ops.render_whole_or_each(target.project, dialect, whole, renderable)
    if isinstance(rendered, str):
        step = RevisionSql(checks.current, checks.target_revision, "", SqlSource.RENDERED, rendered)
        return PlannedSql(dialect, operation, (step,))
    by_span = dict(zip(renderable, rendered, strict=True))
    not_rendered = RenderFailed("not rendered")
    steps = [_step(operation, span, by_span.get(span, not_rendered)) for span in spans]
    if (
        operation == "upgrade"
        and dialect == target.dialect
        and any(step.source == SqlSource.UNKNOWN for step in steps)
        and backend_for(target).records_plans_on_a_live_copy
    ):
        steps = _record_unknown_on_a_copy(target, checks, steps)
    return PlannedSql(dialect, operation, tuple(steps))


_MERGE = "merge"  # a span no offline rendering can isolate: a merge revision's own SQL


def _spans(target: Target, checks: PreflightReport) -> list[tuple[str, str | None, str | None]]:
    """One ``(operation, from, to)`` per revision of the plan, from each revision's own parent
    (so a revision on one branch never renders another branch's SQL); a merge revision's span
    is marked, for no offline rendering isolates it."""
    spans: list[tuple[str, str | None, str | None]] = []
    for info in checks.revisions:
        below = alembic_ops.parents(target.project, info.revision)
        parent = ",".join(below) or None
        if checks.operation == "downgrade":
            span = ("downgrade", info.revision, parent)
        else:
            span = ("upgrade", parent, info.revision)
        spans.append((_MERGE, *span[1:]) if len(below) > 1 else span)
    return spans


def _step(
    operation: str, span: tuple[str, str | None, str | None], rendered: str | RenderFailed
) -> RevisionSql:
    kind, start, goal = span
    runs = (start if operation == "downgrade" else goal) or ""
    if kind == _MERGE:
        reason = "a merge revision: offline, it renders only together with its branches"
        return RevisionSql(start, goal, runs, SqlSource.UNKNOWN, reason=reason)
    if isinstance(rendered, str):
        return RevisionSql(start, goal, runs, SqlSource.RENDERED, rendered)
    return RevisionSql(start, goal, runs, SqlSource.UNKNOWN, reason=describe(rendered)[:160])


def _record_unknown_on_a_copy(
    target: Target, checks: PreflightReport, steps: list[RevisionSql]
) -> list[RevisionSql]:
    """SQLite: upgrade a throwaway copy of the live file and hear what each revision runs."""
    try:
        heard = record_upgrade_on_a_copy(target, checks.target_revision)
    except PreflightRefused as exc:
        return [
            replace(step, reason=f"{step.reason}; {exc}")
            if step.source == SqlSource.UNKNOWN
            else step
            for step in steps
        ]
    return _filled_in(steps, heard)


def record_upgrade_on_a_copy(target: Target, goal: str) -> dict[str, str]:
    """Revision -> the statements it runs, heard while upgrading a copy of the SQLite file."""
    live = Path(target.url.database or "")
    with (
        tempfile.TemporaryDirectory(prefix="autopr-plan-") as scratch,
        backend_for(target).scratch_copy(
            target, live, jobs=1, directory=Path(scratch), prefix="plan-"
        ) as copy,
    ):
        engine = make_engine(copy.url, poolclass=NullPool)
        heard: dict[str, list[str]] = {}
        try:
            with engine.connect() as connection:
                alembic_ops.upgrade(copy.project, connection, goal, recorded=heard)
        except Exception as exc:  # the upgrade fails before it touches anything real
            raise PreflightRefused(
                f"the upgrade fails on a scratch copy of the database: {describe(exc)}"
            ) from None
        finally:
            engine.dispose()
    return {revision: "\n".join(statements) for revision, statements in heard.items()}


def render_plan(
    target: Target, checks: PreflightReport, plan: Plan, risk: Risk | None = None
) -> str:
    lines = [
        f"# Migration plan: {target.name} ({checks.operation})",
        "",
        *(_risk_lines(risk) if risk else []),
        f"- **Database:** `{target.masked_url}` ({target.dialect})",
        f"- **From:** `{checks.current or 'base'}` **to:** `{checks.target_revision}` "
        f"({len(checks.revisions)} revision(s))",
        f"- **Database size:** {_size(checks.database_bytes)}; "
        f"{_size(checks.free_bytes)} free for the backup in `{target.backup_dir}`",
        f"- **Application before:** {_health_line(checks)}",
        *(
            [f"- **Session:** the project's env.py {checks.migrating_session}"]
            if checks.migrating_session
            else []
        ),
        "",
        "## Revisions",
        "",
        "| # | revision | message |",
        "|---|---|---|",
        *(
            f"| {number} | `{info.revision}` | {info.message} |"
            for number, info in enumerate(checks.revisions, start=1)
        ),
    ]
    if checks.long_transactions:
        lines += [
            "",
            "## Long-running transactions",
            "",
            "DDL waits behind these and blocks every query meanwhile.",
            "",
            "| pid | open for | state | application |",
            "|---|---|---|---|",
            *(
                f"| {t.pid} | {t.seconds:.0f} s | {t.state} | {t.application} |"
                for t in checks.long_transactions
            ),
        ]
    lines += [
        *_sources_lines(plan.planned),
        "",
        "## SQL",
        "",
        "```sql",
        plan.sql.strip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def _sources_lines(planned: PlannedSql) -> list[str]:
    if not planned.recorded and not planned.unknown:
        return []
    lines = ["", "## Where the SQL comes from", ""]
    if planned.recorded:
        lines.append(
            f"- Recorded on a scratch copy of the database (Alembic cannot render them "
            f"offline): {', '.join(planned.recorded)}"
        )
    if planned.unknown:
        lines.append(
            f"- **SQL unknown** (neither rendered nor recorded): {', '.join(planned.unknown)}; "
            f"read these revisions' code before approving"
        )
    return lines


def _risk_lines(risk: Risk) -> list[str]:
    rehearsal = [f"- {risk.rehearsal}"] if risk.rehearsal else []
    return [
        f"**Risk: {risk.level.upper()}**",
        "",
        *rehearsal,
        *(f"- {line}" for line in risk.summary),
        "",
    ]


def _health_line(checks: PreflightReport) -> str:
    if checks.health.healthy:
        return "healthy"
    if not checks.application_expected:
        return (
            "no application answers yet; the database is empty, so this is its first "
            "migration and only the database's revision is verified afterwards"
        )
    return f"not healthy: {checks.health.reason}"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} bytes"
