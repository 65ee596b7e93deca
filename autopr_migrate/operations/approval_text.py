"""The text an operator reads in the resume dialog before approving a migration.

It leads with the risk and the decision asked, fits a 512 px dialog (short tables, SQL in
short lines), and says what happens if it goes wrong and by when to decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from autopr_migrate.backends.registry import backend_for
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.model import Operation, Risk
from autopr_migrate.operations.plan import Plan
from autopr_migrate.operations.preflight import PreflightReport
from autopr_migrate.operations.sql_layout import by_revision, layout
from autopr_migrate.store.backups import Backup
from autopr_migrate.targets.targets import Target

MAX_SQL_LINES = 80
# How fast a restore goes, as measured by bench/overhead.py (about 50 MiB/s with two jobs).
RESTORE_BYTES_PER_SECOND = 50 * 2**20


class ApprovalRequest(Protocol):
    """What a person is asked to decide, and the text the resume dialog shows for it."""

    target: Target
    requested_by: str
    deadline: datetime

    @property
    def operation(self) -> str: ...

    @property
    def from_revision(self) -> str | None: ...

    @property
    def to_revision(self) -> str | None: ...

    @property
    def risk(self) -> Risk: ...

    def text(self, *, refused: str | None = None) -> str:
        """The dialog's Markdown; ``refused`` says why the last answer was not accepted."""
        ...


@dataclass(frozen=True)
class ChangeApproval:
    """An upgrade or a downgrade: its plan, what preflight found, the risk, the window."""

    target: Target
    plan: Plan
    checks: PreflightReport
    requested_by: str
    deadline: datetime
    risk: Risk = field(default_factory=Risk)
    window: str = "any time: the upgrade starts as soon as it is approved"

    @property
    def operation(self) -> str:
        return self.checks.operation

    @property
    def from_revision(self) -> str | None:
        return self.plan.current

    @property
    def to_revision(self) -> str | None:
        return self.plan.target_revision

    def text(self, *, refused: str | None = None) -> str:
        return render(self, refused=refused)


@dataclass(frozen=True)
class RestoreApproval:
    """A backup restored over the database's current state: every later write is lost."""

    target: Target
    backup: Backup
    current: str | None
    requested_by: str
    deadline: datetime
    operation: str = Operation.RESTORE

    @property
    def from_revision(self) -> str | None:
        return self.current

    @property
    def to_revision(self) -> str | None:
        return self.backup.revision

    @property
    def risk(self) -> Risk:
        return Risk("high", ["every write since the backup is discarded"])

    def text(self, *, refused: str | None = None) -> str:
        return render_restore(self, refused=refused)


def render(request: ChangeApproval, *, refused: str | None = None) -> str:
    plan, target = request.plan, request.target
    lines = []
    if refused:
        lines += [f"> **The last answer was not accepted:** {refused}", ""]
    lines += [
        f"**Risk: {request.risk.level.upper()}**",
        "",
        *(f"{line}  " for line in request.risk.application),
        *([""] if request.risk.application else []),
        *([request.risk.rehearsal, ""] if request.risk.rehearsal else []),
        f"**Decision asked:** {request.checks.operation} **{target.name}** from "
        f"`{plan.current or 'base'}` to `{plan.target_revision or 'base'}` "
        f"({len(plan.revisions)} revision(s)). The form's default is **reject**.",
        "",
        *_deadline_and_database(request),
        f"| Requested by | {request.requested_by or 'not recorded'} |",
        f"| Window | {request.window} |",
        "",
        "### Risk",
        "",
        *(f"- {line}" for line in request.risk.summary),
        *(
            f"- **Applied revision file changed (accepted by policy):** {problem.line()}"
            for problem in request.checks.accepted_history
        ),
        *(
            f"- **Applied revision file rewritten:** {rewrite.line()}"
            for rewrite in request.checks.rewritten_history
        ),
        "",
        "### Revisions",
        "",
        "| revision | message | undo |",
        "|---|---|---|",
        *(
            f"| `{info.revision}` | {info.message} | "
            f"{'downgrade' if alembic_ops.has_downgrade(info) else '**backup only**'} |"
            for info in plan.revisions
        ),
        "",
        "### If it goes wrong",
        "",
        *_rollback(request),
        "",
        "### SQL",
        "",
        *_sql(plan, request.target.project.version_table),
    ]
    return "\n".join(lines) + "\n"


def _rollback(request: ChangeApproval) -> list[str]:
    if request.checks.operation == "downgrade":
        return [
            "- If the downgrade fails, or the application is not healthy afterwards, the backup "
            "taken right before it is restored (after dumping the broken state).",
            "- Data the downgrade drops (columns, tables) comes back only from that backup.",
        ]
    missing = [i.revision for i in request.plan.revisions if not alembic_ops.has_downgrade(i)]
    size = request.checks.database_bytes
    ratio = backend_for(request.target).dump_size_ratio
    backup = f"about {_mib(size * ratio)}" if ratio < 1 else _mib(size)
    restore_seconds = max(1, round(size / RESTORE_BYTES_PER_SECOND))
    undo = (
        "- A failed revision rolls back by itself; after a partial upgrade or a failed health "
        "probe, Alembic downgrades to the starting revision."
        if not missing
        else f"- Revisions without a downgrade ({', '.join(missing)}): a failure after them is "
        f"undone by restoring the backup."
    )
    return [
        undo,
        f"- If that fails, the backup taken right before the upgrade ({backup}) is restored: "
        f"about {restore_seconds} s; writes made after it are lost, and the broken state is "
        f"dumped first.",
    ]


def _sql(plan: Plan, version_table: str) -> list[str]:
    """Each revision's statements, laid out short; folded after MAX_SQL_LINES lines."""
    groups = by_revision(plan.sql, version_table=version_table)
    unknown = set(plan.planned.unknown)
    total = sum(len(group.statements) for group in groups)
    out: list[str] = []
    lines = shown = 0
    for group in groups:
        block: list[str] = []
        for statement in group.statements:
            text = layout(statement)
            if shown and lines + text.count("\n") + 1 > MAX_SQL_LINES:
                if block:
                    out += [f"`{group.revision}`", "", "```sql", *block, "```", ""]
                return [
                    *out,
                    f"... and {total - shown} more statement(s): the full SQL is "
                    f"in the artifact `migration-plan-{plan.target}`.",
                ]
            block += [text, ""]
            lines += text.count("\n") + 2
            shown += 1
        if block:
            out += [f"`{group.revision}`", "", "```sql", *block[:-1], "```", ""]
        elif group.revision in unknown:
            out += [f"`{group.revision}`: **SQL unknown**: read its code before approving", ""]
        else:
            out += [f"`{group.revision}`: no SQL of its own", ""]
    return out


def _deadline_and_database(request: ApprovalRequest) -> list[str]:
    return [
        f"Decide by **{request.deadline:%Y-%m-%d %H:%M} UTC**; after that the run fails with "
        f"nothing changed.",
        "",
        "| | |",
        "|---|---|",
        f"| Database | `{request.target.masked_url}` |",
    ]


def _mib(count: float) -> str:
    return f"{count / 2**20:.1f} MiB"


def render_restore(request: RestoreApproval, *, refused: str | None = None) -> str:
    """The approval text for restoring a backup over the target's current state."""
    target, backup = request.target, request.backup
    lines = [f"> **The last answer was not accepted:** {refused}", ""] if refused else []
    lines += [
        "**Risk: HIGH**: every write since the backup is discarded",
        "",
        f"**Decision asked:** restore **{target.name}** from the backup taken "
        f"**{backup.created_at}** at revision `{backup.revision or 'base'}` (the database is "
        f"at `{request.current or 'base'}` now). The form's default is **reject**.",
        "",
        *_deadline_and_database(request),
        f"| Backup | `{backup.path.name}` |",
        f"| Taken | {backup.created_at} ({backup.label}) |",
        f"| Size | {_mib(backup.bytes)}, {sum(backup.row_counts.values()):,} rows |",
        f"| sha256 | `{backup.sha256[:16]}...` verified |",
        f"| Requested by | {request.requested_by or 'not recorded'} |",
        "",
        "- The current state is dumped first, so nothing is lost for good.",
        "- Afterwards the revision and every table's row count are checked against the backup, "
        "and the application's health is probed.",
    ]
    return "\n".join(lines) + "\n"
