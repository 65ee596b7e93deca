"""``autopr-migrate fleet census|plan|status``: a fleet looked at from a terminal.

The same operations the fleet flow runs: the census (read-only), the plan per starting revision
with the approval text the flow would show, and the member runs of a fleet by its id.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from autopr_migrate.operations.census import Census, take_census
from autopr_migrate.operations.fleet_plan import FleetRequest, FleetSubject, plan_group
from autopr_migrate.operations.rollout import waves
from autopr_migrate.orchestration.fleet_members import MemberRun, members_of
from autopr_migrate.orchestration.secrets import selected_targets
from autopr_migrate.policy.parameters import FleetPolicy

CENSUS_COLUMNS = ("target", "revision", "schema", "size", "health", "unfinished run", "left out")
MEMBER_COLUMNS = ("target", "state", "seconds", "message", "ran on")


def census_for(selectors: list[str]) -> Census:
    return take_census(selected_targets(selectors).values())


def fleet_plan_text(selectors: list[str], revision: str, policy: FleetPolicy) -> str:
    """The approval text the fleet flow would show; nothing is changed (rehearsals use copies)."""
    targets = selected_targets(selectors)
    census = take_census(targets.values())
    groups = [
        plan_group(
            targets[members[0].target], [m.target for m in members], revision, policy.migration
        )
        for members in census.by_revision().values()
    ]
    pending = {target for group in groups if group.plan for target in group.members}
    order = waves([m for m in census.included if m.target in pending], policy.rollout)
    request = FleetRequest(
        FleetSubject("planned"),
        "",
        datetime.now(UTC) + timedelta(seconds=policy.migration.approval.timeout_seconds),
        census,
        tuple(groups),
        tuple(tuple(wave) for wave in order),
        policy.rollout,
    )
    return request.text()


def member_rows(fleet_id: str) -> list[MemberRun]:
    return sorted(members_of(fleet_id).values(), key=lambda member: member.target)
