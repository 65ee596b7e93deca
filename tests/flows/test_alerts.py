"""``autopr-migrate setup`` and the automations it creates, firing for real into a webhook."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prefect import get_client
from prefect.automations import Automation
from prefect.flow_runs import resume_flow_run

from autopr_migrate.flows.migrate import migrate
from autopr_migrate.orchestration.setup import set_up, targets_to_set_up
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows
from tests.support.paused import BackgroundRun, migrate_approving, read_run
from tests.support.revisions import ADD_PRIORITY, BREAK_APPLICATION, add_revision
from tests.support.webhook import webhook_receiver

PAUSED_ALERT_SECONDS = 10


@pytest.fixture
def alerts(migration_target, monkeypatch):
    with webhook_receiver() as (url, received):
        monkeypatch.setenv("AUTOPR_ALERT_WEBHOOK_URL", url)
        first = set_up(
            targets_to_set_up(["app"]), paused_alert=timedelta(seconds=PAUSED_ALERT_SECONDS)
        )
        yield first, received
        for automation in _our_automations():
            automation.delete()


def _our_automations() -> list[Automation]:
    with get_client(sync_client=True) as client:
        found = client.read_automations()
    return [Automation(**a.model_dump()) for a in found if a.name.startswith("autopr: ")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_setup_twice_changes_nothing(alerts) -> None:
    first, _ = alerts
    assert "concurrency limit migrate-app: present" in first
    before = sorted((a.name, str(a.id)) for a in _our_automations())
    second = set_up(
        targets_to_set_up(["app"]), paused_alert=timedelta(seconds=PAUSED_ALERT_SECONDS)
    )
    automations = [line for line in second if line.startswith("automation")]
    assert len(automations) == 3 and all(line.endswith(": unchanged") for line in automations), (
        automations
    )
    assert "work pool migrations: present" in second
    assert sorted((a.name, str(a.id)) for a in _our_automations()) == before
    with get_client(sync_client=True) as client:
        blocks = [b for b in client.read_block_documents() if b.name == "autopr-alerts-webhook"]
    assert len(blocks) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failed_run_and_a_rollback_page(alerts, history) -> None:
    _, received = alerts
    failed = migrate(target="app", revision="ffffffffffff", policy=fast_policy(), return_state=True)
    assert failed.is_failed()
    run_name = read_run(failed.state_details.flow_run_id).name
    body = received.wait_for(lambda b: b.get("run") == run_name)
    assert body["alert"] == "autopr: migration run failed or crashed"
    assert body["state"] == "Failed" and "is not in the history" in body["message"]
    assert "url" in body  # the run's UI link; None only where the API serves no UI


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_rolled_back_migration_pages_with_the_database(alerts, migration_target, history):
    _, received = alerts
    at_head_with_rows(migration_target.engine())
    add_revision(history, "aaaa000000b0", BREAK_APPLICATION)
    state = migrate_approving(target="app", policy=fast_policy())
    assert state.is_failed() and "rolled back" in state.message
    body = received.wait_for(lambda b: b.get("event") == "autopr.migration.rolled-back")
    assert body["database"] == "autopr.database.app"
    assert body["details"]["status"] == "rolled_back"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_run_waiting_for_approval_too_long_pages(alerts, migration_target, history) -> None:
    _, received = alerts
    at_head_with_rows(migration_target.engine())
    add_revision(history, "aaaa000000b1", ADD_PRIORITY)
    background = BackgroundRun(target="app", policy=fast_policy(approval={"mode": "always"}))
    run = background.paused()
    body = received.wait_for(
        lambda b: b.get("alert") == "autopr: approval waiting too long",
        timeout=PAUSED_ALERT_SECONDS + 40,
    )
    assert body["run"] == run.name
    resume_flow_run(run.id, run_input={"decision": "reject", "approver": "ops", "reason": "t"})
    background.result()
