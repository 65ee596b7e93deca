"""From prefect.yaml to a completed run: deploy, a worker, `prefect deployment run`, approve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect import get_client
from prefect.settings import PREFECT_API_URL

from tests.flows.helpers import at_head_with_rows
from tests.support.alembic_run import PROJECT_ROOT, revision_of
from tests.support.revisions import ADD_PRIORITY, BREAK_APPLICATION, add_revision

BIN = Path(sys.executable).parent
TEST_POLICY = {
    "approval": {"mode": "always", "poll_interval_seconds": 1, "timeout_seconds": 120},
    "window": {"windows": []},
    "probe": {"consecutive_successes": 2, "interval_seconds": 0.2, "deadline_seconds": 3},
}


@pytest.fixture
def stack(migration_target, history, tmp_path):
    """The staging target's environment, a deploy from prefect.yaml, and a process worker."""
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        "AUTOPR_DB_STAGING_URL": migration_target.url.render_as_string(hide_password=False),
        "AUTOPR_DB_STAGING_HEALTH_URL": migration_target.health_url,
        "AUTOPR_DB_STAGING_BACKUP_DIR": str(tmp_path / "staging-backups"),
    }
    setup = _run([BIN / "autopr-migrate", "setup", "--target", "staging"], env)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    deploy = _run([BIN / "prefect", "--no-prompt", "deploy", "--all"], env)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    log = (tmp_path / "worker.log").open("w")
    # The worker runs elsewhere than the checkout, with nothing set about it: the pull step
    # finds the checkout from the installed package.
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", "migrations", "--type", "process"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield env, migration_target
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()


def _run(args: list, env: dict) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _deployment_run(env: dict) -> str:
    params = json.dumps({"policy": TEST_POLICY, "requested_by": "developer"})
    started = _run(
        [BIN / "prefect", "deployment", "run", "migrate/migrate-staging", "--params", params], env
    )
    assert started.returncode == 0, started.stdout + started.stderr
    (run_id,) = [line.split()[-1] for line in started.stdout.splitlines() if "UUID" in line]
    return run_id


def _wait_state(run_id: str, accept, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(run_id)
        if run.state and accept(run.state):
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} stayed {run.state}")


def _approve_and_finish(env: dict) -> object:
    run_id = _deployment_run(env)
    _wait_state(run_id, lambda s: s.is_paused())
    approved = _run(
        [BIN / "autopr-migrate", "approve", run_id, "--as", "ops", "--reason", "CHG-7"], env
    )
    assert approved.returncode == 0, approved.stdout + approved.stderr
    return _wait_state(run_id, lambda s: s.is_final())


def test_deployments_read_back_as_declared(stack) -> None:
    with get_client(sync_client=True) as client:
        staging = client.read_deployment_by_name("migrate/migrate-staging")
        prod = client.read_deployment_by_name("migrate/migrate-prod")
    assert staging.parameters["target"] == "staging" and prod.parameters["target"] == "prod"
    assert prod.parameters["policy"]["approval"]["mode"] == "always"
    assert prod.enforce_parameter_schema and staging.work_pool_name == "migrations"
    (schedule,) = prod.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 2 * * SAT", "Europe/Berlin")
    assert schedule.active is False and schedule.slug == "saturday-night"
    assert staging.schedules[0].active is True
    # Scheduled runs name a requester, or four eyes would refuse every one of them.
    assert schedule.parameters == {"requested_by": "schedule saturday-night"}
    assert staging.schedules[0].parameters["requested_by"] == "schedule staging-weekdays"
    with get_client(sync_client=True) as client:
        rollback = client.read_deployment_by_name("rollback/rollback-prod")
        daily = client.read_deployment_by_name("check/check-daily")
    assert rollback.parameters["policy"]["approval"]["mode"] == "always"
    assert daily.parameters["targets"] == ["staging", "prod"]
    (check_schedule,) = daily.schedules
    assert check_schedule.schedule.cron == "30 6 * * *" and check_schedule.active is True
    window = prod.parameters["policy"]["window"]["windows"][0]
    assert (window["cron"], window["timezone"], window["duration_minutes"]) == (
        "0 2 * * SAT",
        "Europe/Berlin",
        120,
    )


@pytest.mark.long
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_deployment_run_pauses_is_approved_and_completes(stack, history) -> None:
    env, target = stack
    engine = at_head_with_rows(target.engine())
    goal = add_revision(history, "aaaa000000c0", ADD_PRIORITY)
    env["AUTOPR_ALEMBIC_CONFIG"] = os.environ["AUTOPR_ALEMBIC_CONFIG"]
    run = _approve_and_finish(env)
    assert run.state.is_completed(), run.state.message
    assert revision_of(engine) == goal

    add_revision(history, "aaaa000000c1", BREAK_APPLICATION, down=goal)
    broken = _approve_and_finish(env)
    assert broken.state.is_failed() and "rolled back" in broken.state.message
    assert revision_of(engine) == goal
