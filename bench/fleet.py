"""A fleet of small PostgreSQL databases with one process worker, then two: wall time, speed-up,
and the fleet's overhead per member against a single migrate run.

Every member starts from one template at the history's head; a revision adding a column is the
change. Each round recreates the members, starts the workers (each takes ``--per-worker`` runs
at once) and runs the fleet flow with ``parallel`` equal to what the workers can take. The single
run is one member migrated through the same deployment and worker, so both pay the same process
start-up. Target: a speed-up of at least 1.7 with two workers.
Usage: python bench/fleet.py [--members 50] [--per-worker 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")

BIN = Path(sys.executable).parent
GOAL = "b0b0b0b0b0b1"
CHANGE = (
    'op.add_column("workflows", sa.Column("tier", sa.Integer(), nullable=True))',
    'op.drop_column("workflows", "tier")',
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--per-worker", type=int, default=2)
    args = parser.parse_args()

    from fastapi import FastAPI
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from autopr_migrate.flows.fleet import fleet
    from autopr_migrate.policy.parameters import FleetPolicy
    from tests.flows.helpers import at_head_with_rows
    from tests.support.databases import (
        admin_url_from_env,
        create_database,
        drop_database,
        recreate_from_template,
    )
    from tests.support.revisions import add_revision
    from tests.support.servers import serve

    work = Path(tempfile.mkdtemp(prefix="autopr-bench-fleet-"))
    shutil.copytree(
        ROOT / "alembic", work / "alembic", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "alembic.ini", work / "alembic.ini")
    os.environ["AUTOPR_ALEMBIC_CONFIG"] = str(work / "alembic.ini")
    admin = admin_url_from_env()
    template = create_database(admin, prefix="autopr_bench_fleet_tpl")
    engine = create_engine(template, poolclass=NullPool)
    at_head_with_rows(engine)
    engine.dispose()
    add_revision(work / "alembic" / "versions", GOAL, CHANGE)
    names = [f"m{number:03d}" for number in range(1, args.members + 2)]  # one more: the single run
    databases = {name: f"autopr_bench_fleet_{uuid.uuid4().hex[:8]}" for name in names}

    app = FastAPI()

    @app.get("/health/{name}")
    def health(name: str):
        return {"status": "ok"}

    policy_base = {
        "approval": {"mode": "never"},
        "rehearsal": {"enabled": False},
        "probe": {"consecutive_successes": 1, "interval_seconds": 0.1},
        "window": {"windows": []},
    }

    def reset() -> None:
        for database in databases.values():
            recreate_from_template(admin, database, template.database)

    def start_workers(count: int, env: dict) -> list[subprocess.Popen]:
        return [
            subprocess.Popen(
                [
                    str(BIN / "prefect"),
                    "worker",
                    "start",
                    "--pool",
                    "migrations",
                    "--type",
                    "process",
                    "--limit",
                    str(args.per_worker),
                    "--name",
                    f"bench-{n}",
                ],
                env=env,
                cwd=work,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for n in range(count)
        ]

    def stop(workers: list[subprocess.Popen]) -> None:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)

    try:
        with prefect_test_harness(server_startup_timeout=60), serve(app) as base:
            env = {
                **os.environ,
                "PREFECT_API_URL": PREFECT_API_URL.value(),
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                "PREFECT_WORKER_PREFETCH_SECONDS": "1",
            }
            for name, database in databases.items():
                prefix = f"AUTOPR_DB_{name.upper()}_"
                env[f"{prefix}URL"] = admin.set(database=database).render_as_string(False)
                env[f"{prefix}HEALTH_URL"] = f"{base}/health/{name}"
                env[f"{prefix}BACKUP_DIR"] = str(work / "backups" / name)
            os.environ.update({k: v for k, v in env.items() if k.startswith("AUTOPR_DB_")})
            with get_client(sync_client=True) as client:
                client.create_work_pool(WorkPoolCreate(name="migrations", type="process"))
            subprocess.run(
                [str(BIN / "prefect"), "--no-prompt", "deploy", "--name", "migrate-fleet-member"],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
            )

            reset()
            workers = start_workers(1, env)
            single_name = names[-1]
            started = time.monotonic()
            run = run_deployment(
                "migrate/migrate-fleet-member",
                parameters={"target": single_name, "requested_by": "bench", "policy": policy_base},
                timeout=600,
            )
            single = time.monotonic() - started
            assert run.state.is_completed(), run.state
            stop(workers)

            walls = {}
            for count in (1, 2):
                reset()
                workers = start_workers(count, env)
                policy = FleetPolicy.model_validate(
                    {
                        "migration": policy_base,
                        "rollout": {
                            "canary": 1,
                            "wave_percent": 100,
                            "parallel": count * args.per_worker,
                        },
                    }
                )
                started = time.monotonic()
                state = fleet(
                    targets=[f"m{n:03d}" for n in range(1, args.members + 1)],
                    requested_by="bench",
                    fleet_id=f"bench-{count}-{uuid.uuid4().hex[:6]}",
                    policy=policy,
                    return_state=True,
                )
                walls[count] = time.monotonic() - started
                stop(workers)
                assert state.is_completed(), state.message

            ideal = args.members * single / args.per_worker
            print(f"members: {args.members}; each worker takes {args.per_worker} run(s) at once")
            print(f"one migrate run through the deployment: {single:.1f} s")
            print(f"fleet, 1 worker:  {walls[1]:.1f} s")
            print(f"fleet, 2 workers: {walls[2]:.1f} s")
            print(f"speed-up with 2 workers: {walls[1] / walls[2]:.2f} (target >= 1.7)")
            overhead = (walls[1] - ideal) / args.members
            print(
                f"fleet overhead per member (1 worker, against {args.members} single runs "
                f"{args.per_worker} at a time): {overhead:+.2f} s ({overhead / single:+.0%})"
            )
            print(f"cores: {os.cpu_count()}")
    finally:
        for database in [*databases.values(), template.database]:
            drop_database(admin, database)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
