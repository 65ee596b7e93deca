"""A migration process killed with SIGKILL mid-upgrade, and the way back with ``resolve``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL

from autopr_migrate.cli.app import main
from autopr_migrate.errors import ExitCode
from autopr_migrate.flows.migrate import migrate
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums, ledger_rows
from tests.support.alembic_run import PROJECT_ROOT, revision_of
from tests.support.paused import read_run
from tests.support.revisions import ADD_PRIORITY, add_revision

pytestmark = pytest.mark.both_dialects  # their behaviour differs by dialect

HEAD = "f19c7e25b0a3"
# Half of a change, then a long wait: the process is killed while this transaction is open.
STUCK_IN_UPGRADE = (
    """op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))
if not op.get_context().as_sql:  # not while the plan renders the SQL offline
    import os, pathlib, time
    pathlib.Path(os.environ["AUTOPR_TEST_MARKER"]).write_text("inside the upgrade")
    time.sleep(120)""",
    """op.drop_table("half_done")""",
)
RUN_MIGRATE = """
import sys
from autopr_migrate.flows.migrate import migrate
from autopr_migrate.policy.parameters import MigrationPolicy

migrate(target="app", policy=MigrationPolicy.model_validate_json(sys.argv[1]))
"""


def _migrate_inside_the_upgrade(tmp_path: Path) -> subprocess.Popen:
    """Start migrate in its own process; return once it is inside the stuck revision."""
    marker, log_path = tmp_path / "marker", tmp_path / "migrate.log"
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "AUTOPR_TEST_MARKER": str(marker),
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", RUN_MIGRATE, fast_policy().model_dump_json()],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 90
    while not marker.exists():
        assert process.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, "the run never reached the upgrade"
        time.sleep(0.1)
    return process


def _kill_mid_upgrade(tmp_path: Path) -> None:
    process = _migrate_inside_the_upgrade(tmp_path)
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL


def _assert_refused_with_instructions(migration_target) -> None:
    started = time.monotonic()
    state = migrate(target="app", policy=fast_policy(lock={"wait_seconds": 60}), return_state=True)
    assert state.is_failed()
    assert "never finished" in state.message
    assert "autopr-migrate resolve --target app" in state.message
    # It notices the dead holder of the lock instead of waiting out policy.lock.wait_seconds.
    assert time.monotonic() - started < 30


def test_a_killed_run_is_refused_then_resolved_as_rolled_back(
    migration_target, history, tmp_path, capsys
) -> None:
    engine = at_head_with_rows(migration_target.engine())
    before = checksums(engine)
    stuck = add_revision(history, "eeee00000001", STUCK_IN_UPGRADE)
    _kill_mid_upgrade(tmp_path)

    (row,) = ledger_rows(engine)
    assert (row["status"], row["from_revision"], row["to_revision"]) == ("running", HEAD, stuck)
    assert revision_of(engine) == HEAD and checksums(engine) == before  # rolled back by death
    _assert_refused_with_instructions(migration_target)

    assert main(["resolve", "--target", "app", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "recommended: `autopr-migrate resolve --target app --mark rolled-back --yes`" in out
    assert f"ledger row {row['id']} marked rolled_back" in out
    assert "concurrency limit migrate-app: the dead run's slot was freed" in out
    assert [r["status"] for r in ledger_rows(engine)] == ["rolled_back"]
    assert read_run(row["flow_run_id"]).state.type == StateType.CRASHED
    assert httpx.get(migration_target.health_url).status_code == 200

    # Consistent again: with the revision fixed, the next run goes through at once.
    next(history.glob(f"*{stuck}*.py")).write_text(
        next(history.glob(f"*{stuck}*.py"))
        .read_text()
        .replace("time.sleep(120)", "pass")
        .replace('os.environ["AUTOPR_TEST_MARKER"]', "os.devnull")
    )
    state = migrate(target="app", policy=fast_policy(lock={"wait_seconds": 5}), return_state=True)
    assert state.is_completed(), state.message
    assert revision_of(engine) == stuck


def test_a_run_killed_between_revisions_is_resolved_by_restoring_its_backup(
    migration_target, history, tmp_path, capsys
) -> None:
    engine = at_head_with_rows(migration_target.engine())
    before = checksums(engine)
    first = add_revision(history, "eeee00000002", ADD_PRIORITY)
    add_revision(history, "eeee00000003", STUCK_IN_UPGRADE, down=first)
    _kill_mid_upgrade(tmp_path)
    assert revision_of(engine) == first  # the first revision committed on its own

    assert main(["resolve", "--target", "app"]) == ExitCode.NOTHING_DONE  # no choice, no terminal
    assert "recommended: `autopr-migrate resolve --target app --restore --yes`" in (
        capsys.readouterr().out
    )
    assert main(["resolve", "--target", "app", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "the database is at f19c7e25b0a3 and the application is healthy" in out
    assert revision_of(engine) == HEAD and checksums(engine) == before
    (row,) = ledger_rows(engine)
    assert row["status"] == "restored" and "resolved by an operator" in row["message"]
    assert list(migration_target.backup_dir.glob("*-pre-restore.*"))


def test_resolve_refuses_while_the_run_is_still_alive(
    migration_target, history, tmp_path, capsys
) -> None:
    """A run that is slow, not dead, still holds the database lock: resolve changes nothing."""
    at_head_with_rows(migration_target.engine())
    add_revision(history, "eeee00000004", STUCK_IN_UPGRADE)
    process = _migrate_inside_the_upgrade(tmp_path)
    try:
        refused = main(["resolve", "--target", "app", "--mark", "rolled-back", "--yes"])
        assert refused == ExitCode.REFUSED
        assert "the run may still be alive" in capsys.readouterr().err
        assert [r["status"] for r in ledger_rows(migration_target.engine())] == ["running"]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            main(["resolve", "--target", "app", "--mark", "failed", "--yes"])
