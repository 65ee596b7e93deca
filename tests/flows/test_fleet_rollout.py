"""The waves against a real Prefect API, with member runs that end as told: a failed canary
stops everything, the budget stops new starts at once, cancelling stops members not started."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from prefect import flow, get_client
from prefect.flow_runs import resume_flow_run
from prefect.states import Completed, Failed, Running, Scheduled

from autopr_migrate.flows.migrate import migrate
from autopr_migrate.model import Risk
from autopr_migrate.operations.fleet_plan import FleetSubject
from autopr_migrate.orchestration.fleet_members import cancel_waiting, fleet_tag, members_of
from autopr_migrate.orchestration.fleet_rollout import Rollout, run_waves
from autopr_migrate.orchestration.steps.approval import await_approval
from autopr_migrate.policy.parameters import ApprovalPolicy, FleetApproval, RolloutPolicy
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums
from tests.support.alembic_run import revision_of
from tests.support.paused import BackgroundRun
from tests.support.revisions import ADD_PRIORITY, add_revision


@flow(name="member-stand-in")
def member() -> None:
    """Only a flow for the member runs below to belong to."""


def _run(fleet_id: str, target: str, state) -> object:
    with get_client(sync_client=True) as client:
        return client.create_flow_run(
            member, tags=[fleet_tag(fleet_id), f"autopr-target:{target}"], state=state
        ).id


@flow(name="waves-under-test")
def _waves(
    fleet_id: str,
    waves: list[list[str]],
    failing: list[str],
    policy: RolloutPolicy,
    untaken: tuple[str, ...] = (),
):
    started: list[str] = []

    def start(target: str):
        started.append(target)
        if target in untaken:
            return _run(fleet_id, target, Scheduled())
        state = Failed(message="broke") if target in failing else Completed()
        return _run(fleet_id, target, state)

    size = sum(len(wave) for wave in waves)
    rollout = run_waves(Rollout(FleetSubject(fleet_id), {}), waves, policy, start, fleet_size=size)
    return started, rollout.stopped, rollout.failed


def test_a_failed_canary_stops_everything():
    started, stopped, failed = _waves(
        "canary", [["a"], ["b", "c"]], ["a"], RolloutPolicy(canary=1, max_failures=5)
    )
    assert started == ["a"] and failed == ["a"]
    assert stopped == "the canary failed (a)"


def test_the_budget_stops_new_starts_at_once():
    started, stopped, failed = _waves(
        "budget",
        [["a"], ["b", "c", "d"], ["e"]],
        ["b", "c"],
        RolloutPolicy(canary=1, parallel=1, max_failures=1),
    )
    assert started == ["a", "b", "c"] and failed == ["b", "c"]
    assert stopped.startswith("the error budget is exceeded: 2 of 5 member(s) failed (b, c)")


def test_a_member_no_worker_takes_is_cancelled_and_fails():
    started, stopped, failed = _waves(
        "untaken",
        [["u"], ["v"]],
        [],
        RolloutPolicy(canary=0, wave_size=1, max_failures=5, member_start_seconds=5),
        untaken=("u",),
    )
    assert started == ["u", "v"] and failed == ["u"] and stopped == ""
    member = members_of("untaken")["u"]
    assert member.state == "CANCELLED" and "no worker took it within 5 s" in member.message


def test_cancelling_a_fleet_cancels_only_members_no_worker_started():
    waiting = _run("cancelled", "w", Scheduled())
    running = _run("cancelled", "r", Running())
    assert cancel_waiting("cancelled") == ["w"]
    members = members_of("cancelled")
    assert members["w"].state == "CANCELLED" and members["w"].flow_run_id == waiting
    assert members["r"].state == "RUNNING" and members["r"].flow_run_id == running


def test_a_member_run_started_by_hand_with_a_forged_fleet_approval_changes_nothing(
    migration_target, history
):
    engine = at_head_with_rows(migration_target.engine())
    start, before = revision_of(engine), checksums(engine)
    goal = add_revision(history, "ffff00000021", ADD_PRIORITY)
    forged = FleetApproval(
        fleet_id="forged",
        fleet_run_id=str(uuid.uuid4()),
        approved_by="mallory",
        from_revision=start,
        to_revision=goal,
        plan_digest="0" * 64,
    )
    state = migrate(target="app", policy=fast_policy(), fleet_approval=forged, return_state=True)
    assert state.is_failed()
    assert "which did not approve this plan for target 'app'" in state.message, state.message
    assert "nothing was changed" in state.message
    assert revision_of(engine) == start and checksums(engine) == before


def test_one_run_may_pause_for_approval_again_and_again():
    """A fleet approving each wave pauses more than once; each pause gets its own answer."""

    @flow(name="waves-approved-one-by-one")
    def twice(requested_by: str) -> list[str]:
        return [
            await_approval(_Request(number), ApprovalPolicy(poll_interval_seconds=1)).approver
            for number in (1, 2)
        ]

    background = BackgroundRun(twice)
    for approver in ("first", "second"):
        run = background.paused(timeout=60)
        resume_flow_run(run.id, run_input={"decision": "approve", "approver": approver})
        time.sleep(1.5)  # until the run has taken the answer and left the pause
    state = background.result(timeout=60)
    assert state.is_completed(), state
    assert state.result() == ["first", "second"]


class _Request:
    def __init__(self, number: int) -> None:
        self.target = FleetSubject("pauses")
        self.requested_by = "requester"
        self.deadline = datetime.now(UTC) + timedelta(minutes=5)
        self.operation, self.from_revision, self.to_revision = "fleet wave", None, None
        self.risk = Risk("high", ["a wave"])
        self.number = number

    def text(self, *, refused: str | None = None) -> str:
        return f"wave {self.number}"
