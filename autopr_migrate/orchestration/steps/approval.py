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
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

from prefect import get_run_logger, pause_flow_run
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import NotPausedError, resume_flow_run
from prefect.input import RunInput, create_flow_run_input
from prefect.runtime import flow_run
from pydantic import Field

from autopr_migrate.errors import ApprovalExpired, ApprovalRejected, ConfigurationError
from autopr_migrate.orchestration import events
from autopr_migrate.orchestration.links import resume_instructions
from autopr_migrate.orchestration.steps.approval_text import ApprovalRequest, render
from autopr_migrate.orchestration.steps.plan import Plan
from autopr_migrate.policy import inputs
from autopr_migrate.policy.parameters import ApprovalPolicy
from autopr_migrate.targets.targets import Target

REQUEST_KEY = "autopr-approval-request"
REFUSAL_KEY = "autopr-approval-refused-{n}"
DECISION_KEY = "autopr-approval-decision"
DEADLINE_APPROVER = "(deadline)"


class ApprovalInput(RunInput):
    """What the operator fills in when resuming a paused migration."""

    decision: Literal["approve", "reject"] = Field(
        "reject", description="approve runs the upgrade; the default, reject, ends the run "
        "with nothing changed.",
    )  # fmt: skip
    approver: str = Field(
        ..., max_length=inputs.PERSON,
        description="Your name, as the approval policy knows it (required).",
    )  # fmt: skip
    reason: str = Field(
        "", max_length=inputs.REASON, description="Why: a ticket, a change request, a note."
    )


@dataclass(frozen=True)
class Approval:
    approver: str
    reason: str
    by_policy: bool = False


def check_allowed(target: Target, policy: ApprovalPolicy) -> None:
    """Production targets always need a person's approval."""
    if policy.mode == "never" and target.production:
        raise ConfigurationError(
            f"target {target.name!r} is production: policy.approval.mode=never is not "
            f"allowed there; use always or risky"
        )


def require_requester(policy: ApprovalPolicy, requested_by: str, *, flow: str) -> None:
    """With four eyes on, a run must say who asked for it, or nobody could be kept from approving.

    Raises:
        ConfigurationError: four eyes is on and ``requested_by`` is empty.
    """
    if policy.four_eyes and policy.mode != "never" and not inputs.visible_name(requested_by):
        raise ConfigurationError(
            f"four eyes is on (policy.approval.four_eyes) but requested_by is empty: say who asks "
            f"for this run, e.g. prefect deployment run {flow}/<deployment> -p "
            f"requested_by=<your name>; or turn four_eyes off in the deployment's policy"
        )


def refusal(answer: ApprovalInput, policy: ApprovalPolicy, requested_by: str) -> str | None:
    """Why the policy does not accept this answer, or None.

    Names are compared as they show (``inputs.visible_name``): case, blanks and invisible
    characters never make one person two.
    """
    approver, who = answer.approver.strip(), inputs.visible_name(answer.approver)
    if not who:
        return "approver is required: type your name in the approver field"
    try:
        inputs.bounded(answer.approver, "approver")
        inputs.bounded(answer.reason, "reason", one_line=False)
    except ConfigurationError as exc:
        return str(exc)
    if policy.four_eyes and who == inputs.visible_name(requested_by):
        return (
            f"{approver} requested this run and may not decide it (four eyes): "
            f"another person must approve or reject"
        )
    allowed = {inputs.visible_name(name) for name in policy.approvers}
    if allowed and who not in allowed:
        return (
            f"{approver} is not an approver for this target (allowed: "
            f"{', '.join(sorted(policy.approvers))})"
        )
    return None


def await_approval(
    request: ApprovalRequest, policy: ApprovalPolicy, *, text: Callable[..., str] = render
) -> Approval:
    """Pause until an accepted decision arrives.

    Raises:
        ApprovalRejected: an allowed approver rejected it.
        ApprovalExpired: no accepted decision before the deadline.
    """
    logger = get_run_logger()
    target, plan = request.target, request.plan
    if not policy.needs_approval(request.risk.level):
        logger.info("no approval needed: policy %s, risk %s", policy.mode, request.risk.level)
        return Approval("policy", f"approval.mode={policy.mode}", by_policy=True)
    run_id: UUID = flow_run.id
    how = resume_instructions(run_id, flow_run.name)
    create_flow_run_input(REQUEST_KEY, {
        "target": target.name, "from_revision": plan.current, "to_revision": plan.target_revision,
        "risk": request.risk.level, "requested_by": request.requested_by,
        "deadline": request.deadline.isoformat(), "requested_at": datetime.now(UTC).isoformat(),
    })  # fmt: skip
    events.emit(target, events.APPROVAL_REQUESTED, from_revision=plan.current,
                to_revision=plan.target_revision, risk=request.risk.level,
                deadline=request.deadline.isoformat(), **how)  # fmt: skip
    refused: str | None = None
    for attempt in range(1, 1000):
        remaining = (request.deadline - datetime.now(UTC)).total_seconds()
        if remaining < 1:
            break
        logger.info(
            "waiting for approval until %s UTC: open %s and choose Resume (new UI: the menu at "
            "the top right, then Resume), or run: %s",
            f"{request.deadline:%Y-%m-%d %H:%M:%S}", how["ui_url"], how["approve_command"],
        )  # fmt: skip
        answer = _pause(run_id, text(request, refused=refused), remaining, policy)
        if answer is None or answer.approver == DEADLINE_APPROVER:
            break
        refused = refusal(answer, policy, request.requested_by)
        if refused is None:
            return _decided(target, plan, answer)
        logger.warning("answer refused, still waiting: %s", refused)
        create_flow_run_input(REFUSAL_KEY.format(n=attempt), {"reason": refused})
    events.emit(target, events.APPROVAL_EXPIRED, from_revision=plan.current,
                to_revision=plan.target_revision,
                deadline=request.deadline.isoformat())  # fmt: skip
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
        resume_flow_run(run_id, run_input={"decision": "reject", "approver": DEADLINE_APPROVER,
                                           "reason": "the approval deadline passed"})  # fmt: skip


def _decided(target: Target, plan: Plan, answer: ApprovalInput) -> Approval:
    who, reason = answer.approver.strip(), answer.reason.strip()
    create_flow_run_input(DECISION_KEY, {"decision": answer.decision, "approver": who,
                                         "reason": reason})  # fmt: skip
    if answer.decision != "approve":
        events.emit(target, events.REJECTED, approver=who, reason=reason,
                    from_revision=plan.current, to_revision=plan.target_revision)  # fmt: skip
        raise ApprovalRejected(f"rejected by {who}: {reason or 'no reason given'}")
    events.emit(target, events.APPROVED, approver=who, reason=reason,
                from_revision=plan.current, to_revision=plan.target_revision)  # fmt: skip
    get_run_logger().info("approved by %s: %s", who, reason or "no reason given")
    return Approval(who, reason)


def deadline_for(policy: ApprovalPolicy) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=policy.timeout_seconds)
