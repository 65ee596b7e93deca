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
from contextlib import suppress
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
from autopr_migrate.orchestration.fleet_members import members_of
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
        health = serve(_health_app(urls, set(broken)))
        base = health.__enter__()
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
        return {"urls": urls, "health": health, "workers": workers}

    yield build
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


def test_a_fleet_stops_at_its_error_budget_and_leaves_the_rest_untouched(fleet_bed):
    bed = fleet_bed(20, poisoned=["t05"], broken=["t09"], drifted=["t03"])
    urls = bed["urls"]
    policy = _policy(canary=1, wave_size=4, parallel=2, max_failures=1)
    background = _approve_fleet(targets=["t*"], fleet_id="budget", policy=policy)
    state = background.result(timeout=280)
    assert state.is_failed(), state.message
    assert "the error budget is exceeded: 2 of 19 member(s) failed (t05, t09)" in state.message
    assert "1 left out (t03)" in state.message

    # waves: [t01] [t02 t04 t05 t06] [t07 t08 t09 t10] [t11 ...]: the budget goes with t09
    reached = {name: _revision(url) for name, url in urls.items()}
    assert reached["t03"] == START  # drifted: never touched
    assert reached["t05"] == START and reached["t09"] == START  # failed and put back
    assert {reached[n] for n in ("t01", "t02", "t04", "t06", "t07", "t08")} == {GOAL}
    untouched = [f"t{n:02d}" for n in range(11, 21)]
    assert {reached[name] for name in untouched} == {START}
    for name in [*untouched, "t03"]:
        engine = create_engine(urls[name], poolclass=NullPool)
        assert ledger_rows(engine) == []  # no member run even began there
        engine.dispose()

    spans = []
    for url in urls.values():
        engine = create_engine(url, poolclass=NullPool)
        for row in ledger_rows(engine):
            assert row["approved_by"] == "fleet-approver"
            assert row["approval_reason"].startswith("fleet budget")
            spans.append(
                (row["started_at"], row["finished_at"] or row["started_at"] + timedelta(days=1))
            )
        engine.dispose()
    assert 8 <= len(spans) <= 10
    assert _most_at_once(spans) <= 2

    runs = {str(member.flow_run_id) for member in members_of("budget").values()}
    assert len(runs) == len(spans)
    for _, log in bed["workers"]:  # each worker took member runs
        text = log.read_text()
        assert any(run in text for run in runs), text[-3000:]


def test_a_killed_fleet_resumed_applies_nothing_twice(fleet_bed, tmp_path):
    bed = fleet_bed(6)
    urls = bed["urls"]
    policy = _policy(canary=1, wave_size=2, parallel=2, max_failures=0)
    script = (
        "import sys, json; from autopr_migrate.flows.fleet import fleet; "
        "from autopr_migrate.policy.parameters import FleetPolicy; "
        "fleet(targets=['t*'], fleet_id='resume', requested_by='ops', "
        "policy=FleetPolicy.model_validate_json(sys.argv[1]))"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, policy.model_dump_json()],
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
        stdout=(tmp_path / "parent.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    # approve it, then kill it once a member has finished
    deadline = time.monotonic() + 120
    approved = False
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs()
        paused = [r for r in runs if r.name == "fleet-resume" and r.state and r.state.is_paused()]
        if paused and not approved:
            time.sleep(1)
            resume_flow_run(paused[0].id, run_input={"decision": "approve", "approver": "boss"})
            approved = True
        if approved and sum(_revision(url) == GOAL for url in urls.values()) >= 1:
            break
        time.sleep(0.5)
    parent.kill()
    parent.wait(timeout=30)
    assert approved, (tmp_path / "parent.log").read_text()

    background = _approve_fleet(
        targets=["t*"], fleet_id="resume", policy=policy, requested_by="ops2"
    )
    state = background.result(timeout=200)
    assert state.is_completed(), state.message
    for name, url in urls.items():
        assert _revision(url) == GOAL, name
        engine = create_engine(url, poolclass=NullPool)
        rows = ledger_rows(engine)
        engine.dispose()
        assert [row["status"] for row in rows] == ["succeeded"], (name, rows)
