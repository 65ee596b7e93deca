"""The approval pause: the run waits, holding its lock, until an operator decides.

``pause_flow_run`` (not suspend: suspend would re-run the plan and drop the lock) with a flat
input: ``decision`` (default reject), ``approver``, ``reason``. An answer the policy does not
accept (an approver not on the list, the requester approving their own run) is refused, logged
and published, and the run pauses again until the same deadline: one wrong click does not end
a change that waited for its window.
"""

from __future__ import annotations

import contextvars
import threading
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

from prefect import get_client, get_run_logger, pause_flow_run
from prefect.exceptions import FlowPauseTimeout, PrefectHTTPStatusError
from prefect.flow_runs import NotPausedError, resume_flow_run
from prefect.input import RunInput, create_flow_run_input
from prefect.runtime import flow_run
from pydantic import Field

from autopr_migrate.errors import ApprovalExpired, ApprovalRejected
from autopr_migrate.operations.approval_text import ApprovalRequest, ChangeApproval
from autopr_migrate.operations.rollout import require_approved_plan
from autopr_migrate.operations.rules import refusal
from autopr_migrate.orchestration import events
from autopr_migrate.orchestration.fleet_members import verify_approval
from autopr_migrate.orchestration.links import resume_instructions
from autopr_migrate.policy import inputs
from autopr_migrate.policy.parameters import ApprovalPolicy, FleetApproval
from autopr_migrate.targets.targets import Target

REQUEST_KEY = "autopr-approval-request"
REFUSAL_KEY = "autopr-approval-refused-{n}"
DECISION_KEY = "autopr-approval-decision"
DEADLINE_APPROVER = "(deadline)"
BY_POLICY = "policy"  # the approver of an approval the policy gave, with no person asked


class ApprovalInput(RunInput):
    """What the operator fills in when resuming a paused migration."""

    decision: Literal["approve", "reject"] = Field(
        "reject",
        description="approve runs the upgrade; the default, reject, ends the run "
        "with nothing changed.",
    )
    approver: str = Field(
        ...,
        max_length=inputs.PERSON,
        description="Your name, as the approval policy knows it (required).",
    )
    reason: str = Field(
        "", max_length=inputs.REASON, description="Why: a ticket, a change request, a note."
    )


@dataclass(frozen=True)
class Approval:
    approver: str
    reason: str
    by_policy: bool = False


def approval_of(
    request: ChangeApproval, policy: ApprovalPolicy, fleet_approval: FleetApproval | None
) -> Approval:
    """A person's decision in the pause; for a fleet's member, the fleet's approval, once it is
    proven to be for exactly this plan of this target."""
    if fleet_approval is None:
        return await_approval(request, policy)
    verify_approval(fleet_approval, request.target.name)
    require_approved_plan(
        fleet_approval, request.from_revision, request.to_revision, request.plan.checksums
    )
    # The member's own rules still hold: who may approve, four eyes, and a person where the
    # plan's risk needs one.
    if fleet_approval.approved_by == BY_POLICY:
        if policy.needs_approval(request.risk.level):
            raise ApprovalRejected(
                f"fleet {fleet_approval.fleet_id} was approved by its policy, but this target's "
                f"plan (risk {request.risk.level}) needs a person: run the fleet with "
                f"approval.mode always"
            )
    elif refused := refusal(
        fleet_approval.approved_by, fleet_approval.reason, policy, request.requested_by
    ):
        raise ApprovalRejected(f"the fleet's approval does not hold for this target: {refused}")
    reason = f"fleet {fleet_approval.fleet_id}" + (
        f": {fleet_approval.reason}" if fleet_approval.reason else ""
    )
    get_run_logger().info(
        "approved for fleet %s by %s", fleet_approval.fleet_id, fleet_approval.approved_by
    )
    return Approval(fleet_approval.approved_by, reason)


def await_approval(request: ApprovalRequest, policy: ApprovalPolicy) -> Approval:
    """Pause until an accepted decision arrives.

    Raises:
        ApprovalRejected: an allowed approver rejected it.
        ApprovalExpired: no accepted decision before the deadline.
    """
    logger = get_run_logger()
    target = request.target
    revisions = {"from_revision": request.from_revision, "to_revision": request.to_revision}
    if not policy.needs_approval(request.risk.level):
        logger.info("no approval needed: policy %s, risk %s", policy.mode, request.risk.level)
        return Approval(BY_POLICY, f"approval.mode={policy.mode}", by_policy=True)
    run_id: UUID = flow_run.id
    how = resume_instructions(run_id, flow_run.name)
    _forget(run_id, REQUEST_KEY, DECISION_KEY)  # an earlier pause of this run (a fleet's wave)
    create_flow_run_input(
        REQUEST_KEY,
        {
            "target": target.name,
            **revisions,
            "risk": request.risk.level,
            "requested_by": request.requested_by,
            "deadline": request.deadline.isoformat(),
            "requested_at": datetime.now(UTC).isoformat(),
        },
    )
    events.emit(
        target,
        events.APPROVAL_REQUESTED,
        **revisions,
        risk=request.risk.level,
        deadline=request.deadline.isoformat(),
        **how,
    )
    refused: str | None = None
    for attempt in range(1, 1000):
        remaining = (request.deadline - datetime.now(UTC)).total_seconds()
        if remaining < 1:
            break
        logger.info(
            "waiting for approval until %s UTC: open %s and choose Resume (new UI: the menu at "
            "the top right, then Resume), or run: %s",
            f"{request.deadline:%Y-%m-%d %H:%M:%S}",
            how["ui_url"],
            how["approve_command"],
        )
        answer = _pause(run_id, request.text(refused=refused), remaining, policy)
        if answer is None or answer.approver == DEADLINE_APPROVER:
            break
        refused = refusal(answer.approver, answer.reason, policy, request.requested_by)
        if refused is None:
            return _decided(target, revisions, answer)
        logger.warning("answer refused, still waiting: %s", refused)
        _forget(run_id, REFUSAL_KEY.format(n=attempt))
        create_flow_run_input(REFUSAL_KEY.format(n=attempt), {"reason": refused})
    events.emit(target, events.APPROVAL_EXPIRED, **revisions, deadline=request.deadline.isoformat())
    raise ApprovalExpired(
        f"nobody approved before the deadline {request.deadline:%Y-%m-%d %H:%M:%S} UTC "
        f"({policy.timeout_seconds} s)"
    )


def _pause(
    run_id: UUID, description: str, remaining: float, policy: ApprovalPolicy
) -> ApprovalInput | None:
    """Pause until an answer, or until the deadline (then None).

    Prefect fails a run whose pause timed out with its own message ("never resumed"); so at the
    deadline the run answers itself, and Prefect's own timeout is only the safety net.
    """
    # The timer's thread needs this run's Prefect settings (the API URL) too.
    context = contextvars.copy_context()
    expire = threading.Timer(remaining, context.run, args=(_answer_deadline, run_id))
    expire.daemon = True
    expire.start()
    try:
        return pause_flow_run(
            wait_for_input=ApprovalInput.with_initial_data(description=description),
            timeout=int(remaining) + 60,
            poll_interval=max(1, round(policy.poll_interval_seconds)),
        )
    except FlowPauseTimeout:
        return None
    finally:
        expire.cancel()


def _answer_deadline(run_id: UUID) -> None:
    with suppress(NotPausedError, RuntimeError, FlowPauseTimeout):  # an operator answered first
        resume_flow_run(
            run_id,
            run_input={
                "decision": "reject",
                "approver": DEADLINE_APPROVER,
                "reason": "the approval deadline passed",
            },
        )


def _decided(target: Target, revisions: dict, answer: ApprovalInput) -> Approval:
    who, reason = answer.approver.strip(), answer.reason.strip()
    create_flow_run_input(
        DECISION_KEY, {"decision": answer.decision, "approver": who, "reason": reason}
    )
    if answer.decision != "approve":
        events.emit(target, events.REJECTED, approver=who, reason=reason, **revisions)
        raise ApprovalRejected(f"rejected by {who}: {reason or 'no reason given'}")
    events.emit(target, events.APPROVED, approver=who, reason=reason, **revisions)
    get_run_logger().info("approved by %s: %s", who, reason or "no reason given")
    return Approval(who, reason)


def _forget(run_id: UUID, *keys: str) -> None:
    """Delete these inputs of the run where they exist (an earlier pause of the same run)."""
    with get_client(sync_client=True) as client:
        for key in keys:
            try:
                client.delete_flow_run_input(run_id, key)
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code != 404:
                    raise


def deadline_for(policy: ApprovalPolicy) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=policy.timeout_seconds)
