"""`make demo`: a whole migration on SQLite with a local Prefect API, then a bad one undone.

Everything lives under .demo/: the database, its backups, the Prefect API's own database.
Nothing is written to ~/.prefect.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
START_REVISION = "e5c8f2a1d934"  # before the data migration and the unique constraint


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, what: str, timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"demo: the {what} exited ({process.returncode}); see {DEMO}/*.log")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    sys.exit(f"demo: the {what} did not answer at {url} within {timeout:.0f} s")


def _start(args: list[str], log: str, env: dict[str, str]) -> subprocess.Popen:
    handle = (DEMO / log).open("w")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)


def _prepare_environment(api_port: int) -> None:
    os.environ.update(
        PREFECT_HOME=str(DEMO / "prefect"),
        PREFECT_API_URL=f"http://127.0.0.1:{api_port}/api",
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(api_port),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        # The reports below tell the story; the full logs are in the UI.
        PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="CRITICAL",
    )


def _seed_database(url: str) -> None:
    from sqlalchemy import make_url
    from sqlalchemy.pool import NullPool

    from autopr.database import make_engine
    from autopr_migrate.history import commands as alembic_ops
    from autopr_migrate.targets.project import default_project
    from demo.seed import seed

    engine = make_engine(make_url(url), poolclass=NullPool)
    with engine.connect() as connection:
        alembic_ops.upgrade(default_project(), connection, START_REVISION)
    with engine.begin() as connection:
        seed(connection)
    engine.dispose()


def _broken_history() -> Path:
    copy = DEMO / "history"
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "alembic", copy / "alembic", ignore=skip)
    shutil.copy(ROOT / "alembic.ini", copy / "alembic.ini")
    shutil.copy(
        ROOT / "demo" / "broken_revision.py",
        copy / "alembic" / "versions" / "2099_01_01_000000_de5000000bad_demo_break.py",
    )
    return copy / "alembic.ini"


def _report(state, key: str = "migration-report-demo") -> str:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    return next((str(a.data) for a in artifacts if a.key == key), "")


def _approved_run(policy, reason: str):
    """Start a run, show what it asks approval for, and approve it as an operator would."""
    import threading

    from autopr_migrate.cli import approvals
    from autopr_migrate.flows.migrate import migrate

    result: dict = {}
    earlier = {item.run.id for item in approvals.pending()}
    thread = threading.Thread(
        target=lambda: result.update(
            state=migrate(
                target="demo",
                revision="head",
                requested_by="demo-developer",
                policy=policy,
                return_state=True,
            )
        )
    )
    thread.start()
    while not (waiting := [p for p in approvals.pending() if p.run.id not in earlier]):
        time.sleep(0.3)
    run = waiting[0].run
    print(f"The run {run.name} waits for approval. What the operator reads first:\n")
    print("\n".join(approvals.plan_text(str(run.id)).splitlines()[:12]) + "\n   ...\n")
    print(f"$ autopr-migrate approve {run.name} --as demo-operator --reason '{reason}'")
    print(approvals.decide(str(run.id), approve=True, approver="demo-operator", reason=reason))
    thread.join()
    return result["state"]


def _flush_to_api() -> None:
    """Send the logs and events still queued before the API goes away."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    EventsWorker.drain_all()


def _banner(text: str) -> None:
    print(f"\n{'=' * 78}\n{text}\n{'=' * 78}", flush=True)


def main() -> int:
    started = time.monotonic()
    for item in ("autopr.db", "backups", "history"):
        path = DEMO / item
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    DEMO.mkdir(exist_ok=True)
    api_port, health_port = _free_port(), _free_port()
    _prepare_environment(api_port)
    database_url = f"sqlite:///{DEMO / 'autopr.db'}"
    server = _start(
        [sys.executable, "-m", "prefect", "server", "start", "--no-ui"],
        "prefect-server.log",
        dict(os.environ),
    )
    health = None
    try:
        _seed_database(database_url)
        health = _start(
            [sys.executable, "-m", "autopr.health", "--port", str(health_port)],
            "health.log",
            {**os.environ, "DATABASE_URL": database_url},
        )
        os.environ.update(
            AUTOPR_DB_DEMO_URL=database_url,
            AUTOPR_DB_DEMO_HEALTH_URL=f"http://127.0.0.1:{health_port}/health",
            AUTOPR_DB_DEMO_BACKUP_DIR=str(DEMO / "backups"),
        )
        _wait_for(f"http://127.0.0.1:{health_port}/health", health, "health app", 30)
        _wait_for(f"http://127.0.0.1:{api_port}/api/health", server, "Prefect API")

        from autopr_migrate.policy.parameters import ApprovalPolicy, MigrationPolicy, ProbePolicy

        policy = MigrationPolicy(
            approval=ApprovalPolicy(poll_interval_seconds=1, timeout_seconds=300),
            probe=ProbePolicy(interval_seconds=0.5, deadline_seconds=6, consecutive_successes=2),
        )
        _banner(f"1. Migrate the demo database from {START_REVISION} to head, with an approval")
        good = _approved_run(policy, "CHG-1001 reviewed the plan")
        print(_report(good))
        print(f"flow run: {good.type.value} - {good.message}")

        _banner("2. Apply a broken revision: the health probe fails, the flow rolls it back")
        os.environ["AUTOPR_ALEMBIC_CONFIG"] = str(_broken_history())
        bad = _approved_run(policy, "CHG-1002 rename a column")
        del os.environ["AUTOPR_ALEMBIC_CONFIG"]
        print(_report(bad))
        print(f"flow run: {bad.type.value} - {bad.message}")

        import httpx

        after = httpx.get(os.environ["AUTOPR_DB_DEMO_HEALTH_URL"], timeout=5)
        _banner(f"The application now: HTTP {after.status_code} {after.text}")

        from autopr_migrate.cli.app import main as autopr_migrate
        from autopr_migrate.flows.check import check

        _banner("3. The daily check, and the backups an operator can restore")
        checked = check(targets=["demo"], policy=policy, return_state=True)
        print(_report(checked, key="migration-check-demo"))
        print(f"flow run: {checked.name} - {checked.message}\n")
        print("$ autopr-migrate backups --target demo")
        autopr_migrate(["backups", "--target", "demo"])
        ok = good.is_completed() and bad.is_failed() and after.status_code == 200
        _flush_to_api()
    finally:
        for process in (health, server):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    print(
        f"\nDemo finished in {time.monotonic() - started:.0f} s. Where to look:\n"
        f"  runs, logs and artifacts in the Prefect UI:\n"
        f"    PREFECT_HOME={DEMO / 'prefect'} PREFECT_SERVER_ANALYTICS_ENABLED=false "
        f".venv/bin/prefect server start\n"
        f"    then open http://127.0.0.1:4200 -> Runs, and Artifacts: migration-plan-demo, "
        f"migration-report-demo, migration-progress-demo, migration-check-demo\n"
        f"  the database: {DEMO / 'autopr.db'} (its ledger: table autopr_migration_ledger)\n"
        f"  the backups and their sidecars: {DEMO / 'backups'}\n"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
