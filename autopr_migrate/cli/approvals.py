"""``autopr-migrate pending | show | approve | reject``: answer paused runs from a terminal.

Prefect has no ``flow-run resume`` command, and ``prefect api`` exits 0 when the server refuses
an input; these commands call ``resume_flow_run``, then wait to see whether the run accepted
the answer, and fail loudly when it did not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterName,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import FlowPauseTimeout, ObjectNotFound
from prefect.flow_runs import NotPausedError, resume_flow_run
from prefect.input import filter_flow_run_input, read_flow_run_input
from prefect.input.run_input import keyset_from_paused_state

from autopr_migrate.errors import ConfigurationError, ExitCode, MigrationError
from autopr_migrate.orchestration.steps.approval import DECISION_KEY, REFUSAL_KEY, REQUEST_KEY
from autopr_migrate.policy.inputs import bounded, shown, visible_name

MIGRATION_FLOWS = ["migrate", "rollback", "fleet"]


class AnswerRefused(MigrationError):
    """The run did not take the answer: not paused, invalid input, or refused by policy."""

    exit_code = ExitCode.NOT_TAKEN


PENDING_COLUMNS = ("run", "target", "from -> to", "risk", "age", "deadline (UTC)")


@dataclass(frozen=True)
class PendingRun:
    run: FlowRun
    request: dict

    def row(self) -> dict[str, str]:
        r = self.request
        deadline = (r.get("deadline") or "?")[:16].replace("T", " ")
        cells = (
            self.run.name,
            r.get("target", "?"),
            f"{r.get('from_revision') or 'base'} -> {r.get('to_revision', '?')}",
            r.get("risk", "?"),
            self.age,
            deadline,
        )
        return dict(zip(PENDING_COLUMNS, cells, strict=True))

    @property
    def age(self) -> str:
        started = self.request.get("requested_at")
        if not started:
            return "?"
        seconds = (datetime.now(UTC) - datetime.fromisoformat(started)).total_seconds()
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def find_run(reference: str) -> FlowRun:
    """A flow run by id or by name."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_flow_run(UUID(reference))
        except (ValueError, ObjectNotFound):
            pass
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[reference])), limit=5
        )
    if not runs:
        raise AnswerRefused(f"no flow run has the id or name {shown(reference)}")
    waiting = [run for run in runs if run.state and run.state.is_paused()]
    if len(runs) > 1 and len(waiting) == 1:
        return waiting[0]
    if len(runs) > 1:
        raise AnswerRefused(f"{len(runs)} flow runs are named {shown(reference)}: use the run's id")
    return runs[0]


def pending() -> list[PendingRun]:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=MIGRATION_FLOWS)),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
            ),
        )
    return [
        PendingRun(run, read_flow_run_input(REQUEST_KEY, flow_run_id=run.id) or {}) for run in runs
    ]


def plan_text(reference: str) -> str:
    """The plan a paused run shows in its resume dialog."""
    run = find_run(reference)
    if not run.state or not run.state.is_paused():
        raise AnswerRefused(f"run {run.name} is {_state(run)}, not waiting for approval")
    keys = keyset_from_paused_state(run.state)
    return str(read_flow_run_input(keys["description"], flow_run_id=run.id) or "")


def decide(reference: str, *, approve: bool, approver: str, reason: str, wait: float = 30) -> str:
    """Answer a paused run and wait until it took the answer (or refused it).

    Raises:
        AnswerRefused: the run is not paused, the server rejected the input, or the run's
            policy refused the answer (it then stays paused).
    """
    if not visible_name(approver):
        raise ConfigurationError(
            "approver is required: pass --as NAME (your name, as the approval policy knows it)"
        )
    bounded(approver, "approver", advice="pass your name")
    bounded(reason, "reason", one_line=False)
    run = find_run(reference)
    refusals = _refusal_count(run.id)
    answer = {
        "decision": "approve" if approve else "reject",
        "approver": approver,
        "reason": reason,
    }
    try:
        resume_flow_run(run.id, run_input=answer)
    except NotPausedError:
        raise AnswerRefused(
            f"run {run.name} is {_state(run)}, not waiting for approval: nothing was sent"
        ) from None
    except FlowPauseTimeout:
        raise AnswerRefused(
            f"run {run.name} waited too long and can no longer be resumed"
        ) from None
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "no detail"
        raise AnswerRefused(f"the server refused the answer for {run.name}: {detail}") from None
    return _outcome(run, refusals, approve=approve, wait=wait)


def _outcome(run: FlowRun, refusals: int, *, approve: bool, wait: float) -> str:
    """Wait for the run to accept (decision recorded) or refuse (another refusal recorded)."""
    deadline = time.monotonic() + wait
    verb = "approved" if approve else "rejected"
    while time.monotonic() < deadline:
        if _refusal_count(run.id) > refusals:
            refusal = read_flow_run_input(REFUSAL_KEY.format(n=refusals + 1), flow_run_id=run.id)
            reason = (refusal or {}).get("reason", "no reason recorded")
            raise AnswerRefused(f"run {run.name} refused the answer and still waits: {reason}")
        if read_flow_run_input(DECISION_KEY, flow_run_id=run.id) is not None:
            return f"{verb} {run.name}; the run goes on ({_state(_read(run.id))})"
        current = _read(run.id)
        if current.state and current.state.is_final():
            return f"{verb} {run.name}; the run ended {_state(current)}"
        time.sleep(0.3)
    return f"answer sent to {run.name}; it has not picked it up yet (still {_state(run)})"


def _read(run_id: UUID) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def _refusal_count(run_id: UUID) -> int:
    prefix = REFUSAL_KEY.split("{", 1)[0]
    return len(filter_flow_run_input(prefix, limit=1000, flow_run_id=run_id))


def _state(run: FlowRun) -> str:
    return run.state.name if run.state else "unknown"
