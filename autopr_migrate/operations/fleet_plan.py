"""One plan and one approval for a fleet.

Members are grouped by their starting revision; each group is planned once on its largest
member: preflight, the SQL, lint against that member's (the largest) table sizes, and the
rehearsal on a copy of it. The approval text shows the census, each group's plan and risk, the
waves, the error budget and the window; the approval is handed to every member run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from autopr_migrate.analysis.model import worst
from autopr_migrate.model import Risk
from autopr_migrate.operations.census import Census
from autopr_migrate.operations.impact import gate_impact, impact_of
from autopr_migrate.operations.plan import Plan, build_plan
from autopr_migrate.operations.preflight import PreflightReport, preflight
from autopr_migrate.operations.rehearse import rehearse, require
from autopr_migrate.operations.risk import gate, lint_plan, risk_of
from autopr_migrate.operations.rollout import plan_digest
from autopr_migrate.operations.rules import needed_time
from autopr_migrate.operations.sql_layout import by_revision, layout
from autopr_migrate.policy.parameters import (
    FleetApproval,
    MigrationPolicy,
    RolloutPolicy,
    WindowPolicy,
)
from autopr_migrate.targets.targets import Target

LOG = logging.getLogger(__name__)
MAX_SQL_LINES = 60


@dataclass(frozen=True)
class FleetSubject:
    """The fleet as the subject of events and of its approval."""

    fleet_id: str

    @property
    def name(self) -> str:
        return f"fleet-{self.fleet_id}"

    @property
    def resource_id(self) -> str:
        return f"autopr.fleet.{self.fleet_id}"

    @property
    def dialect(self) -> str:
        return "fleet"


@dataclass(frozen=True)
class GroupPlan:
    """The members starting at one revision, and the plan made on the largest of them."""

    from_revision: str | None
    to_revision: str
    members: tuple[str, ...]
    representative: str
    plan: Plan | None  # None: already at the goal
    risk: Risk = field(default_factory=Risk)
    rehearsed_seconds: float = 0.0
    database_bytes: int = 0
    checks: PreflightReport | None = None

    @property
    def digest(self) -> str:
        checksums = self.plan.checksums if self.plan else {}
        return plan_digest(self.from_revision, self.to_revision, checksums)


def plan_group(
    representative: Target,
    members: list[str],
    revision: str,
    policy: MigrationPolicy,
    *,
    log: logging.Logger | logging.LoggerAdapter = LOG,
) -> GroupPlan:
    """Plan the group on its largest member; raise a ``MigrationError`` to refuse the fleet."""
    checks = preflight(representative, revision, policy, log=log)
    if checks.nothing_to_do:
        return GroupPlan(
            checks.current, checks.target_revision or "", tuple(members), representative.name, None
        )
    plan = build_plan(representative, checks)
    findings = lint_plan(representative, checks, plan, log=log)
    gate(findings, policy.risk, log=log)
    rehearsal = rehearse(
        representative,
        checks,
        policy.rehearsal,
        impact=policy.impact,
        tables=findings.tables if findings else [],
        log=log,
    )
    require(rehearsal, policy.rehearsal)
    if plan.planned.unknown and rehearsal.recorded:
        plan = plan.with_recorded(rehearsal.recorded)
        findings = lint_plan(representative, checks, plan, log=log)
        gate(findings, policy.risk, log=log)
    impact = impact_of(rehearsal, findings, policy.impact)
    gate_impact(impact, policy.impact)
    risk = risk_of(findings, rehearsal, plan.planned.unknown, impact)
    return GroupPlan(
        checks.current,
        checks.target_revision or "",
        tuple(members),
        representative.name,
        plan,
        risk,
        rehearsal.upgrade_seconds,
        checks.database_bytes,
        checks,
    )


def needed_seconds(group: GroupPlan, policy: WindowPolicy) -> float:
    """How long the window must still be open to start the group's largest member."""
    return needed_time(policy, group.rehearsed_seconds, group.database_bytes).total_seconds()


@dataclass(frozen=True)
class FleetRequest:
    """What the person approving a fleet is asked, as the resume dialog shows it."""

    target: FleetSubject
    requested_by: str
    deadline: datetime
    census: Census
    groups: tuple[GroupPlan, ...]
    waves: tuple[tuple[str, ...], ...]
    rollout: RolloutPolicy
    window: str = "any time: the rollout starts as soon as it is approved"
    operation: str = "fleet upgrade"

    @property
    def from_revision(self) -> str | None:
        return ",".join(sorted(g.from_revision or "base" for g in self.pending)) or None

    @property
    def to_revision(self) -> str | None:
        return self.groups[0].to_revision if self.groups else None

    @property
    def pending(self) -> list[GroupPlan]:
        return [group for group in self.groups if group.plan is not None]

    @property
    def risk(self) -> Risk:
        levels = [group.risk.level for group in self.pending] or ["low"]
        level = "unknown" if "unknown" in levels else worst(levels)
        return Risk(level, [f"the worst of {len(levels)} group plan(s)"])

    def text(self, *, refused: str | None = None) -> str:
        lines = [f"> **The last answer was not accepted:** {refused}", ""] if refused else []
        members = sum(len(wave) for wave in self.waves)
        lines += [
            f"**Risk: {self.risk.level.upper()}**",
            "",
            f"**Decision asked:** upgrade **{members} database(s)** of fleet "
            f"`{self.target.fleet_id}` to `{self.to_revision}`, in {len(self.waves)} wave(s). "
            f"The form's default is **reject**.",
            "",
            f"Decide by **{self.deadline:%Y-%m-%d %H:%M} UTC**; after that the fleet stops "
            f"with nothing changed.",
            "",
            "| | |",
            "|---|---|",
            f"| Requested by | {self.requested_by or 'not recorded'} |",
            f"| Window | {self.window} |",
            f"| Waves | {self._waves_line()} |",
            f"| Error budget | {self._budget_line()} |",
            f"| Parallel | at most {self.rollout.parallel} member run(s) at once |",
            "",
            "### Census",
            "",
            "| starting at | members | planned on (largest) | risk |",
            "|---|---|---|---|",
            *(
                f"| `{g.from_revision or 'base'}` | {len(g.members)} | {g.representative} | "
                f"{g.risk.level if g.plan else 'already at the goal'} |"
                for g in self.groups
            ),
        ]
        if self.census.excluded:
            lines += ["", "**Left out** (nothing is done to them):", ""]
            lines += [f"- `{m.target}`: {m.excluded}" for m in self.census.excluded]
        for group in self.pending:
            lines += self._group_lines(group)
        return "\n".join(lines) + "\n"

    def _waves_line(self) -> str:
        sizes = [len(wave) for wave in self.waves]
        canary = f"canary {', '.join(self.waves[0])}; " if self.rollout.canary and sizes else ""
        rest = sizes[1:] if self.rollout.canary else sizes
        pause = "; a person approves each wave" if self.rollout.approve_each_wave else ""
        return f"{canary}then {len(rest)} wave(s) of {', '.join(map(str, rest)) or '0'}{pause}"

    def _budget_line(self) -> str:
        budget = f"stop starting new members after {self.rollout.max_failures + 1} failure(s)"
        if self.rollout.max_failure_percent is not None:
            budget += f" or above {self.rollout.max_failure_percent:g} % failed"
        return budget + "; a failed canary stops everything"

    def _group_lines(self, group: GroupPlan) -> list[str]:
        assert group.plan is not None
        risk = group.risk
        lines = [
            "",
            f"### From `{group.from_revision or 'base'}` ({len(group.members)} member(s))",
            "",
            f"**Risk: {risk.level.upper()}**" + (f"; {risk.rehearsal}" if risk.rehearsal else ""),
            "",
            *(f"- {line}" for line in risk.application),
            *(f"- {line}" for line in risk.summary),
            "",
            "| revision | message |",
            "|---|---|",
            *(f"| `{i.revision}` | {i.message} |" for i in group.plan.revisions),
            "",
        ]
        shown = 0
        for part in by_revision(group.plan.sql):
            if not part.statements:
                continue
            text = "\n\n".join(layout(statement) for statement in part.statements)
            if shown + text.count("\n") > MAX_SQL_LINES:
                lines.append("... the rest of the SQL is in the plan artifact")
                break
            lines += [f"`{part.revision}`", "", "```sql", text, "```", ""]
            shown += text.count("\n") + 1
        return lines


def member_approvals(
    fleet_id: str, fleet_run_id: str, approver: str, reason: str, groups: list[GroupPlan]
) -> dict[str, FleetApproval]:
    """What each member run is handed: who approved, and the plan of its group."""
    return {
        target: FleetApproval(
            fleet_id=fleet_id,
            fleet_run_id=fleet_run_id,
            approved_by=approver,
            reason=reason,
            from_revision=group.from_revision,
            to_revision=group.to_revision,
            plan_digest=group.digest,
        )
        for group in groups
        if group.plan is not None
        for target in group.members
    }


def member_policy(policy: MigrationPolicy) -> MigrationPolicy:
    """The members' policy: the fleet's, without a rehearsal each (the group's largest member
    was rehearsed for all of them)."""
    rehearsal = policy.rehearsal.model_copy(update={"enabled": False})
    return policy.model_copy(update={"rehearsal": rehearsal})


def window_needed(groups: list[GroupPlan], policy: WindowPolicy) -> timedelta:
    """The window must still have room for the slowest group's rehearsed upgrade."""
    seconds = [needed_seconds(group, policy) for group in groups if group.plan is not None]
    return timedelta(seconds=max(seconds, default=0))


def fleet_summary(census: Census, upgraded: int | None, failed: int, stopped: str) -> str:
    parts = [] if upgraded is None else [f"{upgraded} member(s) upgraded, {failed} failed"]
    if census.excluded:
        left_out = ", ".join(member.target for member in census.excluded)
        parts.append(f"{len(census.excluded)} left out ({left_out})")
    if stopped:
        parts.append(f"stopped: {stopped}")
    return "; ".join(parts)
