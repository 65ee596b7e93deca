"""The rules a run is held to before it touches anything: who may ask, who may approve, when.

Plain functions of the policy and the target, so they are tested directly, without a flow.
"""

from __future__ import annotations

from datetime import timedelta

from autopr_migrate.errors import ConfigurationError
from autopr_migrate.policy import inputs
from autopr_migrate.policy.parameters import ApprovalPolicy, WindowPolicy
from autopr_migrate.targets.targets import Target

ESTIMATE_BYTES_PER_SECOND = 20 * 2**20  # without a rehearsal: a conservative rewrite speed


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


def require_person_for_production(target: Target, policy: ApprovalPolicy) -> None:
    """Production targets always need a person's approval."""
    if policy.mode == "never" and target.production:
        raise ConfigurationError(
            f"target {target.name!r} is production: policy.approval.mode=never is not "
            f"allowed there; use always or risky"
        )


def refusal(approver: str, reason: str, policy: ApprovalPolicy, requested_by: str) -> str | None:
    """Why the policy does not accept this answer, or None.

    Names are compared as they show (``inputs.visible_name``): case, blanks and invisible
    characters never make one person two.
    """
    who = inputs.visible_name(approver)
    if not who:
        return "approver is required: type your name in the approver field"
    try:
        inputs.bounded(approver, "approver")
        inputs.bounded(reason, "reason", one_line=False)
    except ConfigurationError as exc:
        return str(exc)
    approver = approver.strip()
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


def require_window_for_production(target: Target, policy: WindowPolicy) -> None:
    """Production targets must name at least one window."""
    if target.production and not policy.windows:
        raise ConfigurationError(
            f"target {target.name!r} is production and has no migration window: set "
            f"policy.window.windows (a cron, a time zone and a length)"
        )


def needed_time(
    policy: WindowPolicy, rehearsed_seconds: float | None, database_bytes: int
) -> timedelta:
    """How much window an upgrade needs: the rehearsal (or an estimate) with a safety factor."""
    estimate = (
        rehearsed_seconds if rehearsed_seconds else database_bytes / ESTIMATE_BYTES_PER_SECOND
    )
    seconds = max(estimate * policy.safety_factor, policy.minimum_minutes * 60)
    return timedelta(seconds=seconds)


def windows_text(policy: WindowPolicy) -> str:
    if not policy.windows:
        return "any time: the upgrade starts as soon as it is approved"
    return "; ".join(
        f"{w.name + ' ' if w.name else ''}`{w.cron}` {w.timezone}, {w.duration_minutes} min"
        for w in policy.windows
    )
