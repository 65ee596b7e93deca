"""``autopr-migrate pending | show | approve | reject | plan`` against a real Prefect API."""

from __future__ import annotations

import json

import pytest

from autopr_migrate.cli.app import main
from autopr_migrate.errors import ExitCode
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums, schema
from tests.support.alembic_run import revision_of
from tests.support.paused import BackgroundRun
from tests.support.revisions import ADD_PRIORITY, add_revision

GOAL = "aaaa00000050"


@pytest.fixture
def paused(migration_target, history):
    engine = at_head_with_rows(migration_target.engine())
    add_revision(history, GOAL, ADD_PRIORITY)
    policy = fast_policy(approval={"mode": "always", "approvers": ["bob", "carol"]})
    background = BackgroundRun(target="app", policy=policy)
    run = background.paused()
    yield engine, background, run
    if background.state is None:  # a failed test must not leave the run waiting
        main(["reject", str(run.id), "--as", "carol", "--reason", "test cleanup"])
        background.result()


def test_pending_and_show_describe_the_waiting_run(paused, capsys) -> None:
    _engine, _background, run = paused
    assert main(["pending"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "runs waiting for approval:"
    assert table[1].split() == [
        "run",
        "target",
        "from",
        "->",
        "to",
        "risk",
        "age",
        "deadline",
        "(UTC)",
    ]
    (line,) = [row for row in table if run.name in row]
    assert "app" in line and f"-> {GOAL}" in line and " low " in line
    assert main(["pending", "--format", "json"]) == 0
    (listed,) = [r for r in json.loads(capsys.readouterr().out) if r["run"] == run.name]
    assert listed["target"] == "app" and listed["risk"] == "low"
    assert main(["show", str(run.id)]) == 0
    assert "ADD COLUMN priority" in capsys.readouterr().out


def test_approve_resumes_the_run_and_a_finished_run_cannot_be_approved(paused, capsys) -> None:
    engine, background, run = paused
    assert main(["approve", str(run.id), "--as", "bob", "--reason", "CHG-7"]) == 0
    assert f"approved {run.name}" in capsys.readouterr().out
    assert background.result().is_completed()
    assert revision_of(engine) == GOAL
    assert main(["approve", str(run.id), "--as", "bob"]) == ExitCode.NOT_TAKEN
    assert "not waiting for approval: nothing was sent" in capsys.readouterr().err


def test_a_refused_approver_gets_a_non_zero_exit_and_the_run_waits(paused, capsys) -> None:
    engine, background, run = paused
    before = (revision_of(engine), checksums(engine), schema(engine))
    assert main(["approve", run.name, "--as", "mallory"]) == ExitCode.NOT_TAKEN
    assert "mallory is not an approver" in capsys.readouterr().err
    assert main(["approve", run.name, "--as", " "]) == ExitCode.USAGE  # refused before sending
    assert "approver is required" in capsys.readouterr().err
    assert main(["reject", run.name, "--as", "carol", "--reason", "not today"]) == 0
    state = background.result()
    assert state.is_failed() and "rejected by carol: not today" in state.message
    assert (revision_of(engine), checksums(engine), schema(engine)) == before


def test_unknown_run_is_reported(capsys) -> None:
    assert main(["approve", "no-such-run", "--as", "bob"]) == ExitCode.NOT_TAKEN
    assert "no flow run has the id or name 'no-such-run'" in capsys.readouterr().err


def test_plan_prints_the_approval_text_and_changes_nothing(migration_target, history, capsys):
    engine = at_head_with_rows(migration_target.engine())
    add_revision(history, GOAL, ADD_PRIORITY)
    before = (revision_of(engine), checksums(engine), schema(engine))
    assert main(["plan", "--target", "app"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("**Risk: LOW**") and "ADD COLUMN priority" in out
    assert (revision_of(engine), checksums(engine), schema(engine)) == before
    assert not list(migration_target.backup_dir.glob("*.json"))
