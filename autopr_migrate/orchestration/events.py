"""Our Prefect events: their names and one helper that emits them with nothing secret inside."""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event

from autopr_migrate.masking import mask_secrets
from autopr_migrate.targets.targets import Target

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


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item) for item in value]
    return value


def emit(target: Target, event: str, **payload: Any) -> None:
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
