"""The fleet flow: one approved change rolled out to many databases, canary first, in waves.

Census (read-only, in parallel) -> one plan per starting revision, on its largest member ->
one approval -> window -> waves of member runs started from the member deployment (any worker
of its pool may take each), under the error budget -> the fleet report. Run again under the same
``fleet_id``, it continues where it stopped: member runs are created under an idempotency key, so
a member that ran keeps its run, and nothing is applied twice.
"""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from autopr_migrate.errors import describe
from autopr_migrate.masking import mask_logging
from autopr_migrate.operations.fleet_plan import (
    FleetRequest,
    FleetSubject,
    fleet_summary,
    member_approvals,
    member_policy,
    window_needed,
)
from autopr_migrate.operations.rollout import waves
from autopr_migrate.operations.rules import require_requester, windows_text
from autopr_migrate.orchestration import events
from autopr_migrate.orchestration.fleet_members import (
    cancel_waiting,
    record_approvals,
    set_fleet_limit,
    start_member,
    wait_for_earlier_members,
)
from autopr_migrate.orchestration.fleet_rollout import Rollout, finish, resumed, run_waves
from autopr_migrate.orchestration.steps.approval import await_approval, deadline_for
from autopr_migrate.orchestration.steps.fleet import (
    census_of,
    check_fleet_inputs,
    fleet_members,
    plan_groups,
    wave_approval,
)
from autopr_migrate.orchestration.steps.window import wait_for_window
from autopr_migrate.policy.parameters import FleetPolicy


def _run_name() -> str:
    parameters = flow_run.parameters
    return f"fleet-{parameters.get('fleet_id') or str(flow_run.id)[:8]}"


def _cancel_members(flow, flow_run_, state) -> None:
    fleet_id = flow_run_.parameters.get("fleet_id") or str(flow_run_.id)[:8]
    cancel_waiting(fleet_id)


@flow(name="fleet", flow_run_name=_run_name, on_cancellation=[_cancel_members])
def fleet(
    targets: list[str],
    revision: str = "head",
    requested_by: str = "",
    fleet_id: str = "",
    policy: FleetPolicy | None = None,
) -> State:
    """Upgrade every selected target to ``revision``: names, globs (``tenant-*``),
    ``group:<name>`` or ``label:<name>``; ``fleet_id`` resumes an earlier fleet."""
    mask_logging()
    policy = policy or FleetPolicy()
    fleet_id = fleet_id or str(flow_run.id)[:8]
    subject = FleetSubject(fleet_id)
    try:
        check_fleet_inputs(revision=revision, requested_by=requested_by, fleet_id=fleet_id)
        require_requester(policy.migration.approval, requested_by, flow="fleet")
        chosen = fleet_members(targets, policy.migration)
        earlier = wait_for_earlier_members(fleet_id, policy.rollout.member_timeout_seconds)
        census = census_of(chosen, fleet_id, policy.rollout)
        groups = plan_groups(chosen, census, revision, policy.migration, fleet_id)
    except Exception as exc:  # bad input, a refused plan: nothing was started
        return Failed(message=f"{describe(exc)}; no member was started")
    pending = [g for g in groups if g.plan is not None]
    members = [m for m in census.included if any(m.target in g.members for g in pending)]
    rollout_policy, attempts = resumed(policy.rollout, earlier)
    order = waves(members, rollout_policy)
    events.emit(subject, events.FLEET_STARTED, members=len(members), excluded=len(census.excluded))
    if not members:
        if census.excluded:  # nothing to do for those included; the left-out are not done
            return Failed(message=fleet_summary(census, None, 0, "no member could be started"))
        nothing = "nothing to do: every member is at the goal"
        return Completed(message=fleet_summary(census, None, 0, nothing))
    request = FleetRequest(
        subject,
        requested_by,
        deadline_for(policy.migration.approval),
        census,
        tuple(groups),
        tuple(tuple(w) for w in order),
        rollout_policy,
        windows_text(policy.migration.window),
    )
    try:
        approval = await_approval(request, policy.migration.approval)
        needed = window_needed(groups, policy.migration.window)
        wait_for_window(chosen[members[0].target], policy.migration.window, needed)
    except Exception as exc:  # rejected, expired, outside the window: nothing was started
        return Failed(message=f"{describe(exc)}; no member was started")
    approvals = member_approvals(
        fleet_id, str(flow_run.id), approval.approver, approval.reason, groups
    )
    record_approvals(approvals)
    member = member_policy(policy.migration)
    set_fleet_limit(fleet_id, policy.rollout.parallel)
    rollout = Rollout(subject, {m.target: m.group for m in members})
    run_waves(
        rollout,
        order,
        rollout_policy,
        lambda target: start_member(
            fleet_id=fleet_id,
            target=target,
            revision=approvals[target].to_revision,
            requested_by=requested_by or f"fleet {fleet_id}",
            policy=member,
            approval=approvals[target],
            deployment=policy.rollout.member_deployment,
            attempt=attempts[target],
        ),
        fleet_size=len(census.included),
        before_wave=lambda number, wave: wave_approval(request, policy, number, wave),
    )
    return finish(rollout, census, [m.target for m in members])


if __name__ == "__main__":
    fleet()
