"""The run's timeline and its Markdown report artifact ``migration-report-<target>``."""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect.artifacts import create_markdown_artifact

from autopr_migrate.masking import mask_secrets
from autopr_migrate.operations.timeline import Timeline


@dataclass
class Report:
    target: str
    database: str
    status: str
    message: str
    from_revision: str | None = None
    to_revision: str | None = None
    approved_by: str | None = None
    approval_reason: str | None = None
    backup: str | None = None
    revision_seconds: dict[str, float] = field(default_factory=dict)
    # "rehearsal" (on the copy, under load) and "upgrade" (watched): what the application felt
    impact: dict[str, dict] = field(default_factory=dict)


def write_report(report: Report, timeline: Timeline) -> str:
    markdown = render_report(report, timeline)
    create_markdown_artifact(
        markdown=markdown,
        key=f"migration-report-{report.target}",
        description=f"{report.status}: {report.from_revision or 'base'} -> {report.to_revision}",
    )
    return markdown


def _approval(report: Report) -> str:
    if not report.approved_by:
        return "not approved"
    return f"{report.approved_by}" + (
        f" ({report.approval_reason})" if report.approval_reason else ""
    )


def _impact_line(seen: dict) -> str:
    if seen.get("measured") is False:
        return f"not measured ({seen.get('why_not')})"
    parts = [f"longest wait {seen.get('longest_wait_ms', 0)} ms"]
    if "queries_waited" in seen:
        parts.append(f"{seen['queries_waited']} queries waited for a lock")
    if "failed_queries" in seen:
        parts.append(f"{seen['failed_queries']} failed queries")
    if seen.get("p99_ms") is not None:
        baseline = seen.get("baseline_p99_ms") or 0
        parts.append(f"p99 {seen['p99_ms']:.0f} ms (baseline {baseline:.0f} ms)")
    if seen.get("statements_cancelled"):
        parts.append(f"{seen['statements_cancelled']} statement(s) cancelled to drain the queue")
    if seen.get("over_budget"):
        parts.append("over budget: " + "; ".join(seen["over_budget"]))
    return ", ".join(parts)


def render_report(report: Report, timeline: Timeline) -> str:
    lines = [
        f"# Migration report: {report.target}",
        "",
        f"**{report.status.replace('_', ' ').upper()}**: {mask_secrets(report.message)}",
        "",
        f"- **Database:** `{report.database}`",
        f"- **Revisions:** `{report.from_revision or 'base'}` -> `{report.to_revision or '?'}`",
        f"- **Approved by:** {_approval(report)}",
        f"- **Backup:** `{report.backup or 'none taken'}`",
        "",
        "## Timeline",
        "",
        "| step | started (UTC) | seconds | outcome |",
        "|---|---|---|---|",
        *(
            f"| {s.name} | {s.started:%H:%M:%S} | {s.seconds:.2f} | {s.outcome} |"
            for s in timeline.steps
        ),
    ]
    if report.impact:
        lines += ["", "## Application impact", ""]
        lines += [f"- **{when}:** {_impact_line(seen)}" for when, seen in report.impact.items()]
    if report.revision_seconds:
        lines += ["", "## Revisions applied", "", "| revision | seconds |", "|---|---|"]
        lines += [f"| `{rev}` | {sec:.2f} |" for rev, sec in report.revision_seconds.items()]
    return "\n".join(lines) + "\n"
