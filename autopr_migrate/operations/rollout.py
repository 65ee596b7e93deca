"""A fleet's rollout, as plain decisions: which members go in which wave, when to stop.

The canary is the smallest members (a failure there costs least and stops everything); the
rest follow in waves, smallest first. The error budget stops new starts as soon as failures
exceed it; members already running finish (and put themselves back if they fail).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping

from autopr_migrate.errors import PreflightRefused
from autopr_migrate.operations.census import Member
from autopr_migrate.policy.parameters import FleetApproval, RolloutPolicy


def waves(members: list[Member], policy: RolloutPolicy) -> list[list[str]]:
    """The members' names in waves: the canary first, then waves of the configured size;
    smallest first, to the MiB (databases of about one size go by name, as an operator expects
    reading the list)."""
    ordered = [m.target for m in sorted(members, key=lambda m: (m.bytes >> 20, m.target))]
    canary, rest = ordered[: policy.canary], ordered[policy.canary :]
    size = policy.wave_size or max(1, math.ceil(len(rest) * policy.wave_percent / 100))
    return ([canary] if canary else []) + [rest[i : i + size] for i in range(0, len(rest), size)]


def budget_exceeded(failures: int, total: int, policy: RolloutPolicy) -> bool:
    """Whether ``failures`` of ``total`` members are more than the budget allows: the share
    ``max_failure_percent`` when it is set, else the count ``max_failures``."""
    if policy.max_failure_percent is not None:
        return failures * 100 / max(total, 1) > policy.max_failure_percent
    return failures > policy.max_failures


def plan_digest(from_revision: str | None, to_revision: str, checksums: Mapping[str, str]) -> str:
    """What a fleet approves for one starting revision: the span and each revision file."""
    text = json.dumps([from_revision, to_revision, sorted(checksums.items())])
    return hashlib.sha256(text.encode()).hexdigest()


def require_approved_plan(
    approval: FleetApproval,
    from_revision: str | None,
    to_revision: str | None,
    checksums: Mapping[str, str],
) -> None:
    """A member applies only the plan its fleet approved.

    Raises:
        PreflightRefused: the member is elsewhere, goes elsewhere, or its revision files differ.
    """
    if (from_revision, to_revision) != (approval.from_revision, approval.to_revision):
        raise PreflightRefused(
            f"fleet {approval.fleet_id} approved {approval.from_revision or 'base'} -> "
            f"{approval.to_revision}, but this target would go {from_revision or 'base'} -> "
            f"{to_revision}: it moved since the census; run the fleet again to plan it anew"
        )
    digest = plan_digest(from_revision, to_revision or "", checksums)
    if digest != approval.plan_digest:
        raise PreflightRefused(
            f"fleet {approval.fleet_id} approved other revision files than this worker has "
            f"(plan digest {digest[:12]} is not the approved {approval.plan_digest[:12]}): "
            f"deploy the same code to every worker, then run the fleet again"
        )
