"""Our Prefect events: their names and one helper that emits them with nothing secret inside."""

from __future__ import annotations

from typing import Any, Protocol

from prefect.events import emit_event

from autopr_migrate.masking import mask_secrets

STARTED = "autopr.migration.started"
SUCCEEDED = "autopr.migration.succeeded"
ROLLED_BACK = "autopr.migration.rolled-back"
RESTORED = "autopr.migration.restored"
FAILED = "autopr.migration.failed"
APPROVAL_REQUESTED = "autopr.migration.approval-requested"
APPROVED = "autopr.migration.approved"
REJECTED = "autopr.migration.rejected"
APPROVAL_EXPIRED = "autopr.migration.approval-expired"
CHECK_FAILED = "autopr.migration.check-failed"
FLEET_STARTED = "autopr.fleet.started"
FLEET_WAVE_DONE = "autopr.fleet.wave-done"
FLEET_BUDGET_EXCEEDED = "autopr.fleet.budget-exceeded"
FLEET_STOPPED = "autopr.fleet.stopped"
FLEET_DONE = "autopr.fleet.done"


class Subject(Protocol):
    """What an event is about: a target's database, or a fleet."""

    @property
    def name(self) -> str: ...

    @property
    def resource_id(self) -> str: ...

    @property
    def dialect(self) -> str: ...


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item) for item in value]
    return value


def emit(target: Subject, event: str, **payload: Any) -> None:
    """Emit ``event`` on the target's resource ``autopr.database.<name>``."""
    emit_event(
        event=event,
        resource={
            "prefect.resource.id": target.resource_id,
            "prefect.resource.name": target.name,
            "autopr.dialect": target.dialect,
        },
        payload=_masked({"target": target.name, **payload}),
    )
