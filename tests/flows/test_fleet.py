"""A fleet on real databases and two process workers: census, one approval, waves, the error
budget, parallelism seen from the databases, and a killed fleet resumed without re-applying.

Twenty PostgreSQL databases are made from one template at the history's head, then a revision
is added that every member is to apply. Three members are made to fail, each differently: one
holds data the revision's CHECK constraint rejects (its upgrade fails and rolls back), one's
application breaks on the new schema (the probe fails and the downgrade puts it back), and one
has a column nobody's revision made (the census leaves it out as drifted).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack, suppress
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists
from prefect.flow_runs import resume_flow_run
from prefect.settings import PREFECT_API_URL
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from autopr_migrate.flows.fleet import fleet
from autopr_migrate.orchestration.fleet_members import all_member_runs
from autopr_migrate.policy.parameters import FleetPolicy
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, ledger_rows
from tests.support.alembic_run import PROJECT_ROOT, revision_of
from tests.support.databases import create_database, drop_database, recreate_from_template
from tests.support.paused import BackgroundRun
from tests.support.revisions import add_revision
from tests.support.servers import serve

BIN = Path(sys.executable).parent
POOL = "migrations"
DEPLOYMENT = "migrate/migrate-fleet-member"
START = "f19c7e25b0a3"
GOAL = "ffff00000001"
PLEDGE = (
    """op.add_column("workflows", sa.Column("tier", sa.Integer(), nullable=True))
op.create_check_constraint("ck_workflows_name_not_poison", "workflows", "name <> 'poison'")""",
    """op.drop_constraint("ck_workflows_name_not_poison", "workflows", type_="check")
op.drop_column("workflows", "tier")""",
)


def _health_app(urls: dict[str, str], broken_at_goal: set[str]) -> FastAPI:
    app = FastAPI()
    engines = {name: create_engine(url, poolclass=NullPool) for name, url in urls.items()}

    @app.get("/health/{name}")
    def health(name: str):
        with engines[name].connect() as connection:
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if name in broken_at_goal and revision == GOAL:
            return JSONResponse({"status": "error", "reason": "incompatible schema"}, 503)
        return {"status": "ok", "revision": revision}

    return app


@pytest.fixture
def fleet_bed(history, postgresql_admin_url, tmp_path, monkeypatch):
    """``count`` member databases t01.. at the head, a deployment for member runs, two process
    workers taking them; yields a function building it (the fleet's size varies by test)."""
    made: list[str] = []
    workers: list[tuple[subprocess.Popen, Path]] = []

    def build(count: int, *, poisoned=(), broken=(), drifted=()) -> dict:
        template = create_database(postgresql_admin_url, prefix="autopr_fleet_tpl")
        made.append(template.database)
        engine = create_engine(template, poolclass=NullPool)
        at_head_with_rows(engine)
        engine.dispose()
        urls = {}
        for number in range(1, count + 1):
            name = f"t{number:02d}"
            database = f"autopr_fleet_{uuid.uuid4().hex[:10]}"
            recreate_from_template(postgresql_admin_url, database, template.database)
            made.append(database)
            urls[name] = postgresql_admin_url.set(database=database).render_as_string(
                hide_password=False
            )
        for name in poisoned:
            _execute(
                urls[name],
                "UPDATE workflows SET name = 'poison' WHERE id = (SELECT min(id) FROM workflows)",
            )
        for name in drifted:
            _execute(urls[name], "ALTER TABLE workflows ADD COLUMN added_by_hand integer")
        add_revision(history, GOAL, PLEDGE)
        base = servers.enter_context(serve(_health_app(urls, set(broken))))
        env = {
            **os.environ,
            "PREFECT_API_URL": PREFECT_API_URL.value(),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        }
        for name, url in urls.items():
            prefix = f"AUTOPR_DB_{name.upper()}_"
            variables = {
                f"{prefix}URL": url,
                f"{prefix}HEALTH_URL": f"{base}/health/{name}",
                f"{prefix}BACKUP_DIR": str(tmp_path / "backups" / name),
            }
            env.update(variables)
            for variable, value in variables.items():
                monkeypatch.setenv(variable, value)
        _deploy_member_runs(env)
        for number in (1, 2):
            log = tmp_path / f"worker-{number}.log"
            worker = subprocess.Popen(
                [
                    str(BIN / "prefect"),
                    "worker",
                    "start",
                    "--pool",
                    POOL,
                    "--type",
                    "process",
                    "--name",
                    f"fleet-worker-{number}",
                    "--limit",
                    "1",
                ],
                env=env,
                cwd=tmp_path,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
            )
            workers.append((worker, log))
        return {"urls": urls, "workers": workers}

    with ExitStack() as servers:
        try:
            yield build
        finally:
            for worker, _ in workers:
                worker.terminate()
            for worker, _ in workers:
                worker.wait(timeout=30)
    for name in made:
        drop_database(postgresql_admin_url, name)


def _execute(url: str, statement: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text(statement))
    engine.dispose()


def _deploy_member_runs(env: dict) -> None:
    with get_client(sync_client=True) as client, suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
    deployed = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", "deploy", "--name", "migrate-fleet-member"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr


def _policy(**rollout) -> FleetPolicy:
    migration = fast_policy(approval={"mode": "always"})
    return FleetPolicy.model_validate(
        {
            "migration": migration.model_dump(mode="json"),
            "rollout": {"member_deployment": DEPLOYMENT, **rollout},
        }
    )


def _approve_fleet(**kwargs):
    background = BackgroundRun(fleet, **kwargs)
    run = background.paused(timeout=120)
    resume_flow_run(
        run.id, run_input={"decision": "approve", "approver": "fleet-approver", "reason": "CHG-1"}
    )
    return background


def _most_at_once(rows: list[tuple]) -> int:
    """The most member upgrades in flight at one moment, from the ledgers' own timestamps."""
    moments = sorted([(s, 1) for s, _ in rows] + [(e, -1) for _, e in rows])
    running = peak = 0
    for _, step in moments:
        running += step
        peak = max(peak, running)
    return peak


def _revision(url: str) -> str | None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return revision_of(engine)
    finally:
        engine.dispose()


def _start_parent(policy: FleetPolicy, fleet_id: str, log: Path) -> subprocess.Popen:
    """The fleet flow in a process of its own, so that it can be killed."""
    script = (
        "import sys; from autopr_migrate.flows.fleet import fleet; "
        "from autopr_migrate.policy.parameters import FleetPolicy; "
        f"fleet(targets=['t*'], fleet_id='{fleet_id}', requested_by='ops', "
        "policy=FleetPolicy.model_validate_json(sys.argv[1]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, policy.model_dump_json()],
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def _approve_then_kill(parent: subprocess.Popen, fleet_id: str, urls: dict, log: Path) -> None:
    """Approve the fleet when it asks, then kill it once two members reached the goal."""
    deadline = time.monotonic() + 150
    approved = False
    while time.monotonic() < deadline and parent.poll() is None:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs()
        paused = [r for r in runs if r.name == f"fleet-{fleet_id}" and r.state.is_paused()]
        if paused and not approved:
            time.sleep(1)  # the pause's input schema is stored right after the state
            resume_flow_run(paused[0].id, run_input={"decision": "approve", "approver": "boss"})
            approved = True
        if approved and sum(_revision(url) == GOAL for url in urls.values()) >= 2:
            break
        time.sleep(0.5)
    parent.kill()
    parent.wait(timeout=30)
    assert approved, log.read_text()[-3000:]


@pytest.mark.long
@pytest.mark.timeout(420)  # 48 s alone; 80-165 s seen with the whole suite on two cores
def test_a_killed_fleet_resumes_and_stops_at_its_error_budget(fleet_bed, tmp_path):
    bed = fleet_bed(20, poisoned=["t05"], broken=["t07"], drifted=["t03"])
    urls = bed["urls"]
    policy = _policy(canary=1, wave_size=4, parallel=2, max_failures=1)
    log = tmp_path / "parent.log"
    _approve_then_kill(_start_parent(policy, "tenants", log), "tenants", urls, log)

    # Resumed: the earlier attempt's runs are waited for and kept; nothing is applied twice.
    background = _approve_fleet(targets=["t*"], fleet_id="tenants", policy=policy)
    state = background.result(timeout=360)
    assert state.is_failed(), state.message
    assert "the error budget is exceeded: 2 of 19 member(s) failed (t05, t07)" in state.message
    assert "1 left out (t03)" in state.message

    reached = {name: _revision(url) for name, url in urls.items()}
    rows = {}
    for name, url in urls.items():
        engine = create_engine(url, poolclass=NullPool)
        rows[name] = ledger_rows(engine)
        engine.dispose()
    assert reached["t03"] == START and rows["t03"] == []  # drifted: left alone
    # failed, each put back by its own run: t05's revision rolled back in its transaction,
    # t07's application broke and the downgrade took it back
    # (a member that failed in the killed attempt was tried again in the resumed one)
    for name, status in (("t05", "failed"), ("t07", "rolled_back")):
        assert reached[name] == START
        assert {row["status"] for row in rows[name]} == {status}, (name, rows[name])
    ran = {name for name, found in rows.items() if found}
    for name in ran - {"t05", "t07"}:
        assert reached[name] == GOAL and [r["status"] for r in rows[name]] == ["succeeded"]
        assert rows[name][0]["approved_by"] in ("boss", "fleet-approver")
    # about one size, so by name; waves of 4 after the canary: the budget goes with t07's wave
    # (t05-t08, or t04-t07 in the first attempt) and nothing after it starts
    later = {f"t{n:02d}" for n in range(10, 21)}
    assert not ran & later, sorted(ran)
    assert {reached[name] for name in later} == {START}
    assert {"t01", "t02", "t04"} <= ran

    spans = [
        (row["started_at"], row["finished_at"] or row["started_at"] + timedelta(days=1))
        for found in rows.values()
        for row in found
    ]
    assert _most_at_once(spans) <= 2  # the databases never saw more than `parallel` at once

    runs = {str(member.flow_run_id) for member in all_member_runs("tenants")}
    succeeded = [m for m in all_member_runs("tenants") if m.succeeded]
    assert len(succeeded) == len({m.target for m in succeeded})  # none applied twice
    for _, worker_log in bed["workers"]:  # each worker took member runs
        text_out = worker_log.read_text()
        assert any(run in text_out for run in runs), text_out[-3000:]
