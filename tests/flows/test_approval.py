"""The approval pause against a real Prefect API: the plan, the form, every outcome."""

from __future__ import annotations

import time

import pytest
from prefect.flow_runs import resume_flow_run
from prefect.input import read_flow_run_input
from prefect.input.run_input import keyset_from_paused_state
from sqlalchemy import text

from autopr_migrate.flows.migrate import migrate
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums, ledger_rows, schema
from tests.support.alembic_run import revision_of, upgrade
from tests.support.paused import BackgroundRun, read_run
from tests.support.prefect_api import run_artifacts, run_events
from tests.support.revisions import ADD_PRIORITY, add_revision

GOAL = "aaaa00000040"


@pytest.fixture
def prepared(migration_target, history):
    engine = at_head_with_rows(migration_target.engine())
    add_revision(history, GOAL, ADD_PRIORITY, message="add workflows.priority")
    return engine


def _start(**approval) -> BackgroundRun:
    policy = fast_policy(approval={"mode": "always", "timeout_seconds": 60, **approval})
    return BackgroundRun(target="app", revision="head", policy=policy)


def _approve(run_id, approver: str, reason: str = "ok", decision: str = "approve") -> None:
    resume_flow_run(
        run_id, run_input={"decision": decision, "approver": approver, "reason": reason}
    )


def test_paused_run_shows_plan_and_form_and_refuses_invalid_input(prepared) -> None:
    background = _start()
    run = background.paused()
    keys = keyset_from_paused_state(run.state)
    description = read_flow_run_input(keys["description"], flow_run_id=run.id)
    schema_ = read_flow_run_input(keys["schema"], flow_run_id=run.id)
    assert description.startswith("**Risk: LOW**")
    assert f"to `{GOAL}`" in description and "add workflows.priority" in description
    assert "ADD COLUMN priority" in description and "```sql" in description
    assert "default is **reject**" in description
    fields = schema_["properties"]
    assert set(fields) == {"decision", "approver", "reason"}
    assert all(fields[name].get("description") for name in fields)
    assert "default, reject" in fields["decision"]["description"]
    assert fields["decision"]["default"] == "reject" and schema_["required"] == ["approver"]

    assert fields["approver"]["maxLength"] == 100 and fields["reason"]["maxLength"] == 1000
    for bad in (
        {"decision": "maybe", "approver": "bob"},
        {"decision": "approve"},
        {"decision": "approve", "approver": "b" * 101},
    ):
        with pytest.raises(RuntimeError, match="Validation failed"):
            resume_flow_run(run.id, run_input=bad)
        assert read_run(run.id).state.is_paused()

    _approve(run.id, "   ")  # the run itself refuses a blank name, and asks again
    again = background.paused()
    assert again.state.state_details.pause_key != run.state.state_details.pause_key
    refusal = read_flow_run_input("autopr-approval-refused-1", flow_run_id=run.id)
    assert refusal["reason"].startswith("approver is required")
    _approve(run.id, "bob", "CHG-1234")
    state = background.result()
    assert state.is_completed(), state.message
    assert revision_of(prepared) == GOAL
    (row,) = ledger_rows(prepared)
    assert (row["approved_by"], row["approval_reason"]) == ("bob", "CHG-1234")
    assert row["requested_by"] == background.requested_by
    assert "bob (CHG-1234)" in run_artifacts(run.id)["migration-report-app"]
    found = run_events(run.id, "autopr.database.app", expect="autopr.migration.succeeded")
    assert found["autopr.migration.approved"]["approver"] == "bob"
    assert "ui_url" in found["autopr.migration.approval-requested"]


def test_reject_ends_failed_with_nothing_changed(prepared) -> None:
    before = (revision_of(prepared), checksums(prepared), schema(prepared))
    background = _start()
    run = background.paused()
    _approve(run.id, "carol", "not during the sale", decision="reject")
    state = background.result()
    assert state.is_failed()
    assert "rejected by carol: not during the sale" in state.message
    assert (revision_of(prepared), checksums(prepared), schema(prepared)) == before
    assert list(prepared.connect().execute(text("SELECT 1"))) and not _has_ledger(prepared)
    assert "autopr.migration.rejected" in run_events(
        run.id, "autopr.database.app", expect="autopr.migration.rejected"
    )


def test_no_decision_before_the_deadline_fails_with_nothing_changed(prepared) -> None:
    before = (revision_of(prepared), checksums(prepared))
    started = time.monotonic()
    state = migrate(
        target="app",
        requested_by="erin",
        return_state=True,
        policy=fast_policy(approval={"mode": "always", "timeout_seconds": 3}),
    )
    assert time.monotonic() - started < 30
    assert state.is_failed()
    assert "nobody approved before the deadline" in state.message
    assert (revision_of(prepared), checksums(prepared)) == before
    found = run_events(
        state.state_details.flow_run_id,
        "autopr.database.app",
        expect="autopr.migration.approval-expired",
    )
    assert "autopr.migration.approval-expired" in found


def test_requester_cannot_approve_their_own_run(prepared) -> None:
    background = _start()
    run = background.paused()
    _approve(run.id, background.requested_by.upper())
    time.sleep(2.5)  # the run resumes, refuses the answer and pauses again
    again = background.paused()
    assert again.state.state_details.pause_key != run.state.state_details.pause_key
    refusal = read_flow_run_input("autopr-approval-refused-1", flow_run_id=run.id)
    assert "four eyes" in refusal["reason"]
    description = read_flow_run_input(
        keyset_from_paused_state(again.state)["description"], flow_run_id=run.id
    )
    assert description.startswith("> **The last answer was not accepted:**")
    assert revision_of(prepared) != GOAL
    _approve(run.id, "dave")
    assert background.result().is_completed()


def test_only_listed_approvers_may_decide(prepared) -> None:
    background = _start(approvers=["Erin", "frank"])
    run = background.paused()
    _approve(run.id, "mallory")
    time.sleep(2.5)
    background.paused()
    assert (
        "not an approver"
        in read_flow_run_input("autopr-approval-refused-1", flow_run_id=run.id)["reason"]
    )
    _approve(run.id, "erin", "fine", decision="reject")
    state = background.result()
    assert state.is_failed() and "rejected by erin" in state.message


def test_revision_moved_during_the_pause_stops_the_run(prepared) -> None:
    background = _start()
    run = background.paused()
    upgrade(prepared, GOAL)  # someone ran plain alembic meanwhile
    with prepared.begin() as connection:
        connection.execute(text("UPDATE workflows SET priority = 7"))
    moved = checksums(prepared)
    _approve(run.id, "bob")
    state = background.result()
    assert state.is_failed()
    assert "the database moved" in state.message
    assert checksums(prepared) == moved and not _has_ledger(prepared)


def test_the_lock_is_held_across_the_pause(prepared) -> None:
    background = _start()
    run = background.paused()
    second = migrate(target="app", policy=fast_policy(lock={"wait_seconds": 1}), return_state=True)
    assert second.is_failed() and "another run is migrating target 'app'" in second.message
    _approve(run.id, "bob")
    assert background.result().is_completed()


def test_production_targets_may_not_skip_approval(prepared, monkeypatch) -> None:
    monkeypatch.setenv("AUTOPR_DB_APP_PRODUCTION", "true")
    with pytest.raises(Exception, match="production"):
        migrate(target="app", policy=fast_policy(approval={"mode": "never"}))


def _has_ledger(engine) -> bool:
    from sqlalchemy import inspect

    with engine.connect() as connection:
        return inspect(connection).has_table("autopr_migration_ledger")
