"""The fleet's steps as task runs: its members, the census, the group plans, wave approvals."""

from __future__ import annotations

import re

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from autopr_migrate.errors import ConfigurationError, PreflightRefused
from autopr_migrate.operations.census import Census, take_census
from autopr_migrate.operations.fleet_plan import FleetRequest, GroupPlan, plan_group
from autopr_migrate.operations.plan import render_plan
from autopr_migrate.operations.rules import (
    require_person_for_production,
    require_window_for_production,
)
from autopr_migrate.orchestration.secrets import selected_targets
from autopr_migrate.orchestration.steps.approval import await_approval
from autopr_migrate.policy.inputs import bounded, shown
from autopr_migrate.policy.parameters import FleetPolicy, MigrationPolicy, RolloutPolicy
from autopr_migrate.targets.targets import Target

_FLEET_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


def check_fleet_inputs(*, revision: str, requested_by: str, fleet_id: str) -> None:
    bounded(revision, "revision", advice="pass head, +N, a revision id or a unique prefix")
    bounded(requested_by, "requested_by", advice="pass the requester's name")
    if not isinstance(fleet_id, str) or not _FLEET_ID.match(fleet_id):
        raise ConfigurationError(
            f"fleet_id {shown(fleet_id)} is not valid: use 1-32 lowercase letters, digits and "
            f"dashes (it names the fleet's member runs and artifacts)"
        )


@task(name="fleet-members", cache_policy=NO_CACHE)
def fleet_members(selectors: list[str], policy: MigrationPolicy) -> dict[str, Target]:
    """The selected targets, resolved (a target that cannot be resolved refuses the fleet),
    each held to the rules its own migrate run would be held to."""
    targets = selected_targets(selectors)
    get_run_logger().info("fleet of %d target(s): %s", len(targets), ", ".join(targets))
    for target in targets.values():
        require_person_for_production(target, policy.approval)
        require_window_for_production(target, policy.window)
    return targets


@task(name="census", cache_policy=NO_CACHE)
def census_of(targets: dict[str, Target], fleet_id: str, policy: RolloutPolicy) -> Census:
    """Every member read (revision, schema, size, health, unfinished runs), nothing changed."""
    logger = get_run_logger()
    census = take_census(
        targets.values(),
        parallel=min(16, policy.parallel * 2),
        on_read=lambda done, total: (
            logger.info("census: %d/%d read", done, total)
            if done == total or done % 10 == 0
            else None
        ),
    )
    create_table_artifact(
        table=census.rows(),
        key=f"fleet-census-{fleet_id}",
        description=f"{len(census.included)} member(s) to plan, {len(census.excluded)} left out",
    )
    for member in census.excluded:
        logger.warning("left out %s: %s", member.target, member.excluded)
    if census.excluded and policy.on_excluded == "refuse":
        listed = "; ".join(f"{m.target}: {m.excluded}" for m in census.excluded[:5])
        raise PreflightRefused(
            f"the census leaves out {len(census.excluded)} member(s) ({listed}) and "
            f"policy.rollout.on_excluded is refuse: repair them, or choose skip"
        )
    return census


@task(name="plan-groups", cache_policy=NO_CACHE)
def plan_groups(
    targets: dict[str, Target],
    census: Census,
    revision: str,
    policy: MigrationPolicy,
    fleet_id: str,
) -> list[GroupPlan]:
    """One plan per starting revision, made on the group's largest member; all must reach
    the same revision."""
    logger = get_run_logger()
    groups = []
    for number, (start, members) in enumerate(census.by_revision().items(), start=1):
        largest = targets[members[0].target]
        group = plan_group(largest, [m.target for m in members], revision, policy, log=logger)
        groups.append(group)
        if group.plan is not None and group.checks is not None:
            create_markdown_artifact(
                markdown=render_plan(largest, group.checks, group.plan, group.risk),
                key=f"fleet-{fleet_id}-plan-{number}",
                description=f"{len(members)} member(s) from {start or 'base'}",
            )
    goals = {group.to_revision for group in groups}
    if len(goals) > 1:
        raise PreflightRefused(
            f"the members would end at different revisions ({', '.join(sorted(goals))}): name "
            f"one revision every member's history has"
        )
    return groups


def wave_approval(request: FleetRequest, policy: FleetPolicy, number: int, wave: list[str]):
    """With ``approve_each_wave``, a person approves each wave after the first."""
    if number == 1 or not policy.rollout.approve_each_wave:
        return
    get_run_logger().info("wave %d waits for approval: %s", number, ", ".join(wave))
    await_approval(_WaveRequest(request, number, tuple(wave)), policy.migration.approval)


class _WaveRequest:
    def __init__(self, request: FleetRequest, number: int, wave: tuple[str, ...]) -> None:
        self.request, self.number, self.wave = request, number, wave
        self.target, self.requested_by = request.target, request.requested_by
        self.deadline, self.operation = request.deadline, f"fleet wave {number}"
        self.from_revision, self.to_revision = request.from_revision, request.to_revision
        self.risk = request.risk

    def text(self, *, refused: str | None = None) -> str:
        head = [f"> **The last answer was not accepted:** {refused}", ""] if refused else []
        return "\n".join(
            [
                *head,
                f"**Decision asked:** start wave {self.number} of fleet "
                f"`{self.request.target.fleet_id}`: {', '.join(self.wave)}. The fleet report "
                f"shows how the earlier waves went.",
                "",
                self.request.text(),
            ]
        )
