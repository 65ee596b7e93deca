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
from autopr_migrate.orchestration.secrets import secret_block, secret_block_names
from autopr_migrate.policy.parameters import FleetPolicy
from autopr_migrate.targets.selection import select_targets
from autopr_migrate.targets.targets import Target, resolve_target

CENSUS_COLUMNS = ("target", "revision", "schema", "size", "health", "unfinished run", "left out")
MEMBER_COLUMNS = ("target", "state", "seconds", "message", "ran on")


def fleet_targets(selectors: list[str]) -> dict[str, Target]:
    names = select_targets(selectors, secret_names=secret_block_names())
    return {name: resolve_target(name, secrets=secret_block) for name in names}


def census_for(selectors: list[str]) -> Census:
    return take_census(fleet_targets(selectors).values())


def fleet_plan_text(selectors: list[str], revision: str, policy: FleetPolicy) -> str:
    """The approval text the fleet flow would show; nothing is changed (rehearsals use copies)."""
    targets = fleet_targets(selectors)
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
