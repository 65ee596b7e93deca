"""Read back what a flow run left in the Prefect API: logs, artifacts, events."""

from __future__ import annotations

import re
import time
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.events.filters import EventFilter, EventRelatedFilter, EventResourceFilter


def run_logs(flow_run_id: UUID) -> list[str]:
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200
        )
    return [log.message for log in logs]


def run_artifacts(flow_run_id: UUID) -> dict[str, str]:
    """``{key: data}`` of the run's artifacts (the latest data per key)."""
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key or a.type: str(a.data) for a in artifacts}


def run_events(flow_run_id: UUID, resource_id: str, *, expect: str, wait: float = 10) -> dict:
    """``{event name: payload}`` of ``resource_id``'s events in the run, once ``expect`` is in."""
    deadline = time.monotonic() + wait
    while True:
        with get_client(sync_client=True) as client:
            page = client.read_events(
                EventFilter(
                    resource=EventResourceFilter(id=[resource_id]),
                    related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
                ),
                limit=50,
            )
        found = {event.event: event.payload for event in page.events}
        if expect in found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def task_run_counts(flow_run_id: UUID) -> dict[str, int]:
    """``{task name: attempts}`` for the run's task runs (retries included)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {run.name.rsplit("-", 1)[0]: run.run_count for run in runs}


def logged(flow_run_id: UUID, pattern: str, *, wait: float = 15) -> re.Match:
    """The first match of ``pattern`` in the run's logs, which reach the API in batches."""
    deadline = time.monotonic() + wait
    while True:
        for line in run_logs(flow_run_id):
            if found := re.search(pattern, line):
                return found
        assert time.monotonic() < deadline, f"no log line of the run matches {pattern!r}"
        time.sleep(0.3)


def all_logs(flow_run_id: UUID, *, last: str, wait: float = 15) -> list[str]:
    """Every log line of a finished run, once its last line (``last``) has arrived."""
    logged(flow_run_id, last, wait=wait)
    return run_logs(flow_run_id)
