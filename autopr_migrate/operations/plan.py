"""The plan: the SQL for exactly ``current:target`` in the target's dialect, and what we know.

Rendered with Alembic's offline mode, so it is the SQL the upgrade will run, revision by
revision. The flow stores it as the Markdown artifact ``migration-plan-<target>``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.pool import NullPool

from autopr_migrate.backends.engine import make_engine
from autopr_migrate.backends.registry import backend_for
from autopr_migrate.errors import OfflineRenderUnsupported, PreflightRefused, RenderFailed, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.history.commands import RevisionInfo
from autopr_migrate.model import Risk
from autopr_migrate.operations.preflight import PreflightReport
from autopr_migrate.targets.targets import Target

_NOT_PLANNED = ("PRAGMA", "SELECT", "BEGIN", "COMMIT", "ROLLBACK")


@dataclass(frozen=True)
class Plan:
    target: str
    current: str | None
    target_revision: str
    revisions: list[RevisionInfo]
    sql: str
    markdown: str

    @property
    def checksums(self) -> dict[str, str]:
        return {info.revision: info.sha256 for info in self.revisions}


def build_plan(target: Target, checks: PreflightReport, risk: Risk | None = None) -> Plan:
    """Render the SQL for exactly ``current:target`` and the plan's Markdown."""
    sql = render_planned_sql(target, checks)
    return Plan(
        target.name,
        checks.current,
        checks.target_revision,
        checks.revisions,
        sql,
        render_plan(target, checks, sql, risk),
    )


def render_planned_sql(target: Target, checks: PreflightReport, dialect: str | None = None) -> str:
    """The SQL the plan runs, in ``dialect`` (default: the target's)."""
    if checks.operation == "downgrade":
        try:
            return alembic_ops.render_downgrade_sql(
                target.project, dialect or target.dialect, checks.current, checks.target_revision
            )
        except RenderFailed as exc:
            raise PreflightRefused(f"the downgrade SQL could not be rendered: {exc}") from None
    if dialect and dialect != target.dialect:
        return alembic_ops.render_sql(
            target.project, dialect, checks.current, checks.target_revision
        )
    return _render(target, checks.current, checks.target_revision)


def _render(target: Target, current: str | None, goal: str) -> str:
    try:
        return alembic_ops.render_sql(target.project, target.dialect, current, goal)
    except OfflineRenderUnsupported as exc:
        # SQLite batch mode reflects the live table when it must copy it; offline it cannot.
        if not backend_for(target).records_plans_on_a_live_copy:
            raise PreflightRefused(f"the SQL could not be rendered: {exc}") from None
    except RenderFailed as exc:
        raise PreflightRefused(f"the SQL could not be rendered: {exc}") from None
    return _render_on_scratch_copy(target, goal)


def _render_on_scratch_copy(target: Target, goal: str) -> str:
    """Apply the upgrade to a throwaway copy of the SQLite file and record the SQL it runs."""
    statements: list[str] = []
    live = Path(target.url.database or "")
    with (
        tempfile.TemporaryDirectory(prefix="autopr-plan-") as scratch,
        backend_for(target).scratch_copy(
            target, live, jobs=1, directory=Path(scratch), prefix="plan-"
        ) as copy,
    ):
        engine = make_engine(copy.url, poolclass=NullPool)

        @event.listens_for(engine, "before_cursor_execute")
        def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
            if not statement.lstrip().upper().startswith(_NOT_PLANNED):
                suffix = f"  -- parameters: {parameters}" if parameters else ""
                statements.append(f"{statement.strip()};{suffix}")

        try:
            with engine.connect() as connection:
                alembic_ops.upgrade(target.project, connection, goal)
        except Exception as exc:  # the upgrade fails before it touches anything real
            raise PreflightRefused(
                f"the upgrade fails on a scratch copy of the database: {describe(exc)}; "
                f"nothing was changed"
            ) from None
        finally:
            engine.dispose()
    header = "-- SQLite: rendered by applying the upgrade to a scratch copy of the database"
    return "\n\n".join([header, *statements]) + "\n"


def render_plan(target: Target, checks: PreflightReport, sql: str, risk: Risk | None = None) -> str:
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
    lines += ["", "## SQL", "", "```sql", sql.strip(), "```", ""]
    return "\n".join(lines)


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
