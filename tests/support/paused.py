"""Run a migrate flow in a thread and find it once it pauses for approval."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import ObjectNotFound
from prefect.input.run_input import keyset_from_paused_state

from autopr_migrate.flows.migrate import migrate


class BackgroundRun:
    """``flow(**kwargs)`` (migrate by default) in a thread; a unique ``requested_by`` finds it."""

    def __init__(self, flow: Any = migrate, **kwargs: Any) -> None:
        self.flow = flow
        self.requested_by = kwargs.setdefault("requested_by", f"requester-{uuid.uuid4().hex[:8]}")
        self.state: Any = None
        self._thread = threading.Thread(target=self._run, args=(kwargs,), daemon=True)
        self._thread.start()

    def _run(self, kwargs: dict[str, Any]) -> None:
        self.state = self.flow(**kwargs, return_state=True)

    def paused(self, timeout: float = 60) -> FlowRun:
        """The run, once it is Paused (again)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.paused_now()
            if run is not None:
                return run
            assert self._thread.is_alive(), f"the run ended without pausing: {self.state}"
            time.sleep(0.2)
        raise AssertionError("the run did not pause")

    def paused_now(self) -> FlowRun | None:
        """The run if it is Paused and ready for input (the state shows before its schema)."""
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                )
            )
            run = next(
                (r for r in runs if r.parameters.get("requested_by") == self.requested_by), None
            )
            if run is None:
                return None
            try:
                client.read_flow_run_input(run.id, keyset_from_paused_state(run.state)["schema"])
            except (ObjectNotFound, httpx.HTTPStatusError):
                return None
        return run

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def result(self, timeout: float = 120) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the run did not finish"
        return self.state


def read_run(run_id) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def migrate_approving(*, approver: str = "test-approver", **kwargs: Any) -> Any:
    """Run migrate, approving whenever it pauses (high-risk plans always ask); its final state."""
    from prefect.flow_runs import resume_flow_run

    background = BackgroundRun(**kwargs)
    deadline = time.monotonic() + 240
    while background.running and time.monotonic() < deadline:
        run = background.paused_now()
        if run is not None:
            resume_flow_run(
                run.id,
                run_input={
                    "decision": "approve",
                    "approver": approver,
                    "reason": "approved by the test",
                },
            )
        time.sleep(0.2)
    return background.result()
