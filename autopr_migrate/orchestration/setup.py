"""``autopr-migrate setup``: what the migration flows need in a Prefect API, idempotently.

The work pool, one concurrency limit per target, notification blocks from the environment,
and the automations that page: a migration run Failed or Crashed (matched on the state type, so
a custom state name still alerts), a run waiting for approval too long, and our own rolled-back,
restored, approval-expired and check-failed events. Running it again changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from uuid import UUID

from prefect import get_client
from prefect.automations import Automation
from prefect.blocks.core import Block
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.events.actions import CallWebhook, DoNothing, SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.exceptions import ObjectNotFound

from autopr_migrate.orchestration.secrets import secret_block
from autopr_migrate.orchestration.steps.lock import ensure_limit
from autopr_migrate.targets.targets import (
    DEFAULT_TARGET_ENV,
    Target,
    default_target_name,
    resolve_target,
)

WORK_POOL = "migrations"
MIGRATION_FLOWS = ["migrate", "rollback", "check", "fleet"]
_TARGET_URL = re.compile(r"^AUTOPR_DB_([A-Z0-9_]+)_URL$")
_HEALTH = "_HEALTH"  # AUTOPR_DB_<NAME>_HEALTH_URL is a target's health URL, not a target
_FINAL = {
    "prefect.flow-run.Running",
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Crashed",
    "prefect.flow-run.Cancelling",
    "prefect.flow-run.Cancelled",
}
RUN_PAYLOAD = (
    '{"alert": "{{ automation.name }}", "run": "{{ flow_run.name }}", '
    '"state": "{{ flow_run.state.name }}", "message": {{ flow_run.state.message | tojson }}, '
    '"url": "{{ flow_run|ui_url }}", "event": "{{ event.event }}"}'
)
EVENT_PAYLOAD = (
    '{"alert": "{{ automation.name }}", "event": "{{ event.event }}", '
    '"database": "{{ event.resource.id }}", "details": {{ event.payload | tojson }}}'
)


def discover_targets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Targets named by ``AUTOPR_DB_<NAME>_URL``, and the default target if DATABASE_URL is set."""
    environ = os.environ if environ is None else environ
    names = {
        m.group(1).lower().replace("_", "-")
        for key in environ
        if (m := _TARGET_URL.match(key)) and not m.group(1).endswith(_HEALTH)
    }
    if environ.get("DATABASE_URL") or environ.get(DEFAULT_TARGET_ENV):
        names.add(default_target_name(environ))
    return sorted(names)


def alert_blocks(environ: Mapping[str, str] | None = None) -> list[tuple[str, Block]]:
    """Notification blocks for each alert destination the environment names."""
    from prefect.blocks.notifications import MicrosoftTeamsWebhook, SlackWebhook
    from prefect.blocks.webhook import Webhook

    environ = os.environ if environ is None else environ
    makers = {
        "AUTOPR_ALERT_WEBHOOK_URL": ("autopr-alerts-webhook", lambda u: Webhook(url=u)),
        "AUTOPR_ALERT_SLACK_WEBHOOK_URL": ("autopr-alerts-slack", lambda u: SlackWebhook(url=u)),
        "AUTOPR_ALERT_TEAMS_WEBHOOK_URL": (
            "autopr-alerts-teams",
            lambda u: MicrosoftTeamsWebhook(url=u),
        ),
    }
    configured = [(v, spec) for v, spec in makers.items() if environ.get(v, "").strip()]
    return [(name, make(environ[variable].strip())) for variable, (name, make) in configured]


def set_up(targets: list[Target], *, paused_alert: timedelta) -> list[str]:
    """Create or confirm everything; one line per item saying what was done."""
    lines = [_work_pool()]
    lines += [f"concurrency limit {ensure_limit(target)}: present" for target in targets]
    actions = []
    for name, block in alert_blocks():
        block_id = block.save(name, overwrite=True)
        lines.append(f"block {name}: saved")
        actions.append((name, block, block_id))
    if not actions:
        lines.append(
            "no alert destination in the environment (AUTOPR_ALERT_WEBHOOK_URL, "
            "AUTOPR_ALERT_SLACK_WEBHOOK_URL, ...): automations will only be recorded"
        )
    wanted = _automations(actions, paused_alert)
    for automation in wanted:
        lines.append(_upsert(automation))
    lines += _remove_retired({automation.name for automation in wanted})
    return lines


def _remove_retired(wanted: set[str]) -> list[str]:
    """Automations an earlier version of setup created under a name no longer used."""
    with get_client(sync_client=True) as client:
        retired = [
            a
            for a in client.read_automations()
            if "autopr-setup" in a.tags and a.name not in wanted
        ]
        for automation in retired:
            client.delete_automation(automation.id)
    return [f"automation {automation.name!r}: retired" for automation in retired]


def _work_pool() -> str:
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(WORK_POOL)
            return f"work pool {WORK_POOL}: present"
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))
            return f"work pool {WORK_POOL}: created"


def _actions(destinations: list[tuple[str, Block, UUID]], *, subject: str, payload: str) -> list:
    if not destinations:
        return [DoNothing()]
    from prefect.blocks.webhook import Webhook

    return [
        CallWebhook(block_document_id=block_id, payload=payload)
        if isinstance(block, Webhook)
        else SendNotification(block_document_id=block_id, subject=subject, body=payload)
        for _name, block, block_id in destinations
    ]


def _automations(destinations: list, paused_alert: timedelta) -> list[Automation]:
    flows = {"prefect.resource.role": "flow", "prefect.resource.name": MIGRATION_FLOWS}
    return [
        Automation(
            name="autopr: migration run failed or crashed",
            description="A migrate, rollback, check or fleet run ended Failed or Crashed, "
            "whatever its state is named.",
            trigger=EventTrigger(
                expect={"prefect.flow-run.*"},
                match={
                    "prefect.resource.id": "prefect.flow-run.*",
                    "prefect.state-type": ["FAILED", "CRASHED"],
                },
                match_related=flows,
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=_actions(destinations, subject="Migration run failed", payload=RUN_PAYLOAD),
        ),
        Automation(
            name="autopr: approval waiting too long",
            description=f"A migration run has waited for approval for over {paused_alert}.",
            trigger=EventTrigger(
                after={"prefect.flow-run.Paused"},
                expect=_FINAL,
                for_each={"prefect.resource.id"},
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related=flows,
                posture=Posture.Proactive,
                threshold=1,
                within=paused_alert,
            ),
            actions=_actions(
                destinations, subject="Migration waiting for approval", payload=RUN_PAYLOAD
            ),
        ),
        Automation(
            name="autopr: database rolled back or restored, approval expired, check failed",
            description="A migration was undone, nobody approved it in time, or the daily "
            "check found a target that needs attention.",
            trigger=EventTrigger(
                expect={
                    "autopr.migration.rolled-back",
                    "autopr.migration.restored",
                    "autopr.migration.approval-expired",
                    "autopr.migration.check-failed",
                },
                match={"prefect.resource.id": "autopr.database.*"},
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=_actions(
                destinations, subject="Migration undone or expired", payload=EVENT_PAYLOAD
            ),
        ),
    ]


def _upsert(wanted: Automation) -> str:
    """Create, update or leave alone, by a fingerprint of what we want kept in a tag."""
    spec = _canonical(wanted.model_dump(include={"description", "trigger", "actions"}, mode="json"))
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    wanted.tags = ["autopr-setup", f"autopr-spec-{digest}"]
    try:
        existing = Automation.read(name=wanted.name)
    except ValueError:
        wanted.create()
        return f"automation {wanted.name!r}: created"
    if set(wanted.tags) <= set(existing.tags) and existing.enabled:
        return f"automation {wanted.name!r}: unchanged"
    wanted.id = existing.id
    wanted.update()
    return f"automation {wanted.name!r}: updated"


def _canonical(value: object) -> object:
    """Sets come back from the API as lists in any order: compare them sorted."""
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [_canonical(item) for item in value]
        return sorted(items, key=repr) if all(isinstance(i, str) for i in items) else items
    return value


def targets_to_set_up(names: list[str]) -> list[Target]:
    return [resolve_target(name, secrets=secret_block) for name in (names or discover_targets())]
