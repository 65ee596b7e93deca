"""A fleet's members as Prefect runs: started from a deployment, read back, cancelled.

Each member is its own ``migrate`` run created with ``run_deployment`` on the member
deployment's work pool, so any worker on any machine may take it. The run is created under the
idempotency key ``autopr-fleet-<fleet>-<target>-<plan digest>-<attempt>``: the same call made
again gets the same run back instead of a second one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from prefect import get_client, get_run_logger
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.concurrency.sync import concurrency
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.input import create_flow_run_input, read_flow_run_input
from prefect.states import Cancelled

from autopr_migrate.errors import PreflightRefused
from autopr_migrate.policy.parameters import FleetApproval, MigrationPolicy

_PAGE = 200  # the most flow runs the API returns at once


def fleet_tag(fleet_id: str) -> str:
    return f"autopr-fleet:{fleet_id}"


APPROVAL_RECORD = "autopr-fleet-approval"


def record_approvals(approvals: dict[str, FleetApproval]) -> None:
    """On the fleet's own run: who approved, and each member's approved plan. A member run
    checks its approval against this record, so a ``fleet_approval`` parameter alone (a member
    run started by hand) approves nothing."""
    first = next(iter(approvals.values()))
    create_flow_run_input(
        APPROVAL_RECORD,
        {
            "approved_by": first.approved_by,
            "members": {target: approval.plan_digest for target, approval in approvals.items()},
        },
    )


def verify_approval(approval: FleetApproval, target: str) -> None:
    """Raise ``PreflightRefused`` unless the run ``approval.fleet_run_id`` is fleet
    ``approval.fleet_id``'s own run and recorded this approver and exactly this plan for
    ``target``."""
    refused = PreflightRefused(
        f"the fleet approval names fleet run {approval.fleet_run_id[:36]!r}, which did not approve "
        f"this plan for target {target!r}: member runs are started by the fleet flow, with its "
        f"approval"
    )
    try:
        run_id = UUID(approval.fleet_run_id)
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(run_id)
            flow_name = client.read_flow(run.flow_id).name
        record = read_flow_run_input(APPROVAL_RECORD, flow_run_id=run_id)
    except (ValueError, ObjectNotFound):
        raise refused from None
    if flow_name != "fleet" or run.name != f"fleet-{approval.fleet_id}":
        raise refused
    if not isinstance(record, dict):
        raise refused
    members = record.get("members") or {}
    if (
        record.get("approved_by") != approval.approved_by
        or members.get(target) != approval.plan_digest
    ):
        raise refused


def fleet_limit(fleet_id: str) -> str:
    """The global concurrency limit every member run of the fleet holds a slot of."""
    return f"autopr-fleet-{fleet_id}"  # never a target's migrate-<target>


def set_fleet_limit(fleet_id: str, parallel: int) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(fleet_limit(fleet_id), parallel)
        except ObjectAlreadyExists:  # a member or another attempt made it first: now an update
            client.upsert_global_concurrency_limit_by_name(fleet_limit(fleet_id), parallel)


def drop_fleet_limit(fleet_id: str) -> None:
    with get_client(sync_client=True) as client, suppress(ObjectNotFound):
        client.delete_global_concurrency_limit_by_name(fleet_limit(fleet_id))


@contextmanager
def fleet_slot(fleet_id: str | None) -> Iterator[None]:
    """A member run's slot in its fleet's limit (the fleet's ``parallel``), held while it runs;
    no slot for a run outside a fleet."""
    if not fleet_id:
        yield
        return
    with concurrency(fleet_limit(fleet_id), occupy=1, strict=False):
        yield


@dataclass(frozen=True)
class MemberRun:
    target: str
    flow_run_id: UUID
    state: str
    final: bool
    succeeded: bool
    message: str
    started: datetime | None
    ended: datetime | None
    worker: str
    created: datetime | None = None

    @property
    def seconds(self) -> float | None:
        if self.started and self.ended:
            return round((self.ended - self.started).total_seconds(), 1)
        return None


def start_member(
    *,
    fleet_id: str,
    target: str,
    revision: str,
    requested_by: str,
    policy: MigrationPolicy,
    approval: FleetApproval,
    deployment: str,
    attempt: int = 0,
) -> UUID:
    """The member's run for this plan and attempt: created now, or the one this same call
    created before."""
    run = run_deployment(
        name=deployment,
        parameters={
            "target": target,
            "revision": revision,
            "requested_by": requested_by,
            "policy": policy.model_dump(mode="json"),
            "fleet_approval": approval.model_dump(mode="json"),
        },
        timeout=0,
        tags=[fleet_tag(fleet_id), f"autopr-target:{target}"],
        # one run per member, plan and attempt: a retry of this call never makes a second
        idempotency_key=f"autopr-fleet-{fleet_id}-{target}-{approval.plan_digest[:16]}-{attempt}",
        as_subflow=False,
    )
    return run.id


def read_members(runs: dict[str, UUID]) -> dict[str, MemberRun]:
    """Each member's run as the Prefect API has it now."""
    if not runs:
        return {}
    with get_client(sync_client=True) as client:
        found = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id={"any_": list(runs.values())})
        )
    by_id = {run.id: run for run in found}
    return {
        target: _member(target, by_id[run_id]) for target, run_id in runs.items() if run_id in by_id
    }


def members_of(fleet_id: str) -> dict[str, MemberRun]:
    """Each member's newest run the fleet created, found by its tag (status, cancellation)."""
    newest: dict[str, MemberRun] = {}
    for member in all_member_runs(fleet_id):
        if member.target not in newest or member.created > newest[member.target].created:
            newest[member.target] = member
    return newest


def all_member_runs(fleet_id: str) -> list[MemberRun]:
    """Every run of every member of the fleet, across its attempts, page by page."""
    found: list[FlowRun] = []
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[fleet_tag(fleet_id)])),
                offset=len(found),
                limit=_PAGE,
            )
            found += page
            if len(page) < _PAGE:
                break
    return [_member(_target_of(run), run) for run in found]


def _target_of(run: FlowRun) -> str:
    return next((t.split(":", 1)[1] for t in run.tags if t.startswith("autopr-target:")), "")


def wait_for_earlier_members(fleet_id: str, timeout_seconds: float) -> list[MemberRun]:
    """Every member run earlier attempts of this fleet created, once none is still going (a
    fleet run again under the same id must see where they ended, not race them)."""
    logger = get_run_logger()
    deadline = time.monotonic() + timeout_seconds
    while True:
        earlier = all_member_runs(fleet_id)
        going = sorted({member.target for member in earlier if not member.final})
        if not going or time.monotonic() > deadline:
            if earlier:
                logger.info(
                    "fleet %s ran before: %d member run(s) found, %d still going",
                    fleet_id,
                    len(earlier),
                    len(going),
                )
            return earlier
        logger.info(
            "waiting for %d member run(s) of the earlier attempt: %s", len(going), ", ".join(going)
        )
        time.sleep(2)


def cancel_waiting(fleet_id: str) -> list[str]:
    """Cancel the fleet's member runs no worker has started yet; their targets."""
    cancelled = []
    for target, member in members_of(fleet_id).items():
        if member.state in {t.value for t in (StateType.SCHEDULED, StateType.PENDING)}:
            cancel_member(member, f"fleet {fleet_id} was cancelled")
            cancelled.append(target)
    return cancelled


def cancel_member(member: MemberRun, why: str) -> None:
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(member.flow_run_id, Cancelled(message=why))


def not_started(target: str, reason: str) -> MemberRun:
    """A member whose run could not even be created: a failure, for the budget."""
    message = f"no member run could be started: {reason}"
    return MemberRun(target, UUID(int=0), "NOT_STARTED", True, False, message, None, None, "")


def _member(target: str, run: FlowRun) -> MemberRun:
    state = run.state
    state_type = state.type if state else StateType.SCHEDULED
    return MemberRun(
        target=target,
        flow_run_id=run.id,
        state=state_type.value,
        final=bool(state and state.is_final()),
        succeeded=bool(state and state.is_completed()),
        message=(state.message or "") if state else "",
        started=run.start_time,
        ended=run.end_time,
        worker=str(run.infrastructure_pid or ""),  # host:pid of the process that ran it
        created=run.created,
    )
