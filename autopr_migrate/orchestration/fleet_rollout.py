"""The waves of a fleet, run: members started from their deployment, watched, counted.

At most ``parallel`` member runs are in flight at once; the next member starts when one
ends. After each member that fails the error budget is checked: once it is exceeded no member
is started any more, the members already running finish (each puts its own database back if
it fails), and the rest stay untouched. A failed canary stops the fleet. The report table and
the progress artifact are updated as members end; events mark the waves.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.states import Completed, Failed, State

from autopr_migrate.errors import describe
from autopr_migrate.operations.census import Census
from autopr_migrate.operations.fleet_plan import FleetSubject, fleet_summary
from autopr_migrate.operations.rollout import budget_exceeded
from autopr_migrate.orchestration import events
from autopr_migrate.orchestration.fleet_members import (
    MemberRun,
    cancel_member,
    drop_fleet_limit,
    not_started,
    read_members,
)
from autopr_migrate.orchestration.links import flow_run_url
from autopr_migrate.policy.parameters import RolloutPolicy

POLL_SECONDS = 1.0


@dataclass
class Rollout:
    """Where the rollout stands: member runs by target, and why it stopped early, if it did."""

    fleet: FleetSubject
    group_of: dict[str, str]
    runs: dict[str, UUID] = field(default_factory=dict)
    seen: dict[str, MemberRun] = field(default_factory=dict)
    stopped: str = ""
    done_before: int = 0  # members at the goal before this attempt

    @property
    def failed(self) -> list[str]:
        return sorted(t for t, m in self.seen.items() if m.final and not m.succeeded)

    @property
    def succeeded(self) -> list[str]:
        return sorted(t for t, m in self.seen.items() if m.succeeded)


def run_waves(
    rollout: Rollout,
    waves: list[list[str]],
    policy: RolloutPolicy,
    start: Callable[[str], UUID],
    *,
    fleet_size: int,
    before_wave: Callable[[int, list[str]], None] = lambda number, wave: None,
) -> Rollout:
    """Run ``waves`` in order through ``start`` (target -> its member run); the error budget
    counts against ``fleet_size`` (every member, those done by an earlier attempt too)."""
    logger = get_run_logger()
    total = fleet_size
    rollout.done_before = total - sum(len(wave) for wave in waves)
    progress = create_progress_artifact(
        100.0 * rollout.done_before / max(total, 1),
        key=f"fleet-progress-{rollout.fleet.fleet_id}",
        description="members finished",
    )
    for number, wave in enumerate(waves, start=1):
        if rollout.stopped:
            break
        before_wave(number, wave)
        _run_wave(rollout, wave, policy, start, total, progress)
        canary = number == 1 and policy.canary > 0
        failed_here = [t for t in wave if t in rollout.failed]
        if canary and failed_here and not rollout.stopped:
            rollout.stopped = f"the canary failed ({', '.join(failed_here)})"
        events.emit(
            rollout.fleet,
            events.FLEET_WAVE_DONE,
            wave=number,
            members=wave,
            failed=failed_here,
        )
        logger.info(
            "wave %d/%d done: %d member(s), %d failed",
            number,
            len(waves),
            len(wave),
            len(failed_here),
        )
    if rollout.stopped:
        events.emit(rollout.fleet, events.FLEET_STOPPED, reason=rollout.stopped)
    return rollout


def _run_wave(rollout, wave, policy, start, total, progress) -> None:
    queue = list(wave)
    in_flight: set[str] = set()
    submitted: dict[str, float] = {}
    while queue or in_flight:
        while queue and len(in_flight) < policy.parallel and not rollout.stopped:
            target = queue.pop(0)
            try:
                rollout.runs[target] = start(target)
                submitted[target] = time.monotonic()
            except Exception as exc:  # no run could be made (no deployment, the API away)
                rollout.seen[target] = not_started(target, describe(exc))
                _publish(rollout, total, progress)
                _check_budget(rollout, total, policy)
                continue
            in_flight.add(target)
        if rollout.stopped:
            queue.clear()
        if not in_flight:
            break
        time.sleep(POLL_SECONDS)
        now = read_members({t: rollout.runs[t] for t in in_flight})
        rollout.seen.update(now)
        _cancel_untaken(now, submitted, policy)
        ended = [t for t in in_flight if t in now and now[t].final]
        if ended:
            in_flight.difference_update(ended)
            _publish(rollout, total, progress)
            _check_budget(rollout, total, policy)


def _cancel_untaken(
    members: dict[str, MemberRun], submitted: dict[str, float], policy: RolloutPolicy
) -> None:
    """A member no worker took in time is cancelled: it fails, and the fleet goes on (or
    stops, as the budget says) instead of waiting for ever."""
    now = time.monotonic()
    for target, member in members.items():
        waited = now - submitted.get(target, now)
        if member.state in ("SCHEDULED", "PENDING") and waited > policy.member_start_seconds:
            get_run_logger().warning(
                "no worker took %s's member run in %d s: cancelled", target, waited
            )
            cancel_member(member, f"no worker took it within {policy.member_start_seconds} s")


def _check_budget(rollout: Rollout, total: int, policy: RolloutPolicy) -> None:
    if rollout.stopped or not budget_exceeded(len(rollout.failed), total, policy):
        return
    rollout.stopped = (
        f"the error budget is exceeded: {len(rollout.failed)} of {total} member(s) failed "
        f"({', '.join(rollout.failed)})"
    )
    events.emit(rollout.fleet, events.FLEET_BUDGET_EXCEEDED, failed=rollout.failed, total=total)
    get_run_logger().warning("%s: no member is started any more", rollout.stopped)


def _publish(rollout: Rollout, total: int, progress) -> None:
    finished = rollout.done_before + sum(1 for member in rollout.seen.values() if member.final)
    update_progress_artifact(progress, 100.0 * finished / max(total, 1))
    publish_report(rollout)


def publish_report(rollout: Rollout, untouched: list[str] | None = None) -> None:
    rows = [
        {
            "target": target,
            "group": rollout.group_of.get(target, ""),
            "state": member.state.lower(),
            "seconds": member.seconds,
            "message": member.message[:200],
            "ran on": member.worker,
            "run": flow_run_url(member.flow_run_id),
        }
        for target, member in sorted(rollout.seen.items())
    ]
    rows += [
        {"target": target, "group": rollout.group_of.get(target, ""), "state": "not started"}
        for target in untouched or []
    ]
    create_table_artifact(
        table=rows or [{"target": "none"}],
        key=f"fleet-report-{rollout.fleet.fleet_id}",
        description=f"fleet {rollout.fleet.fleet_id}: {len(rollout.succeeded)} succeeded, "
        f"{len(rollout.failed)} failed",
    )


def resumed(policy: RolloutPolicy, earlier: list[MemberRun]) -> tuple[RolloutPolicy, Counter]:
    """The rollout after earlier attempts: no canary again if they had successes; a member
    still to do whose earlier runs ended is tried again, in a run of its own (the attempt)."""
    if any(run.succeeded for run in earlier):
        policy = policy.model_copy(update={"canary": 0})
    return policy, Counter(run.target for run in earlier if run.final)


def finish(rollout: Rollout, census: Census, members: list[str]) -> State:
    """The fleet's end: its limit removed, the final report, the done event, its state."""
    drop_fleet_limit(rollout.fleet.fleet_id)
    untouched = [target for target in members if target not in rollout.runs]
    publish_report(rollout, untouched)
    succeeded, failed = len(rollout.succeeded), len(rollout.failed)
    message = fleet_summary(census, succeeded, failed, rollout.stopped)
    events.emit(
        rollout.fleet,
        events.FLEET_DONE,
        succeeded=succeeded,
        failed=failed,
        untouched=len(untouched),
    )
    get_run_logger().info("%s", message)
    return Failed(message=message) if failed or rollout.stopped else Completed(message=message)
