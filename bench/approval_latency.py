"""How long after ``autopr-migrate approve`` the upgrade starts, with ``poll_interval=1``.

Each round starts a migrate run on a seeded SQLite database, waits until it pauses, approves it
through the same code as the CLI, and reads from the Prefect API the timestamp of the run's
first upgrade log line. Target: at most 2 s. Usage: python bench/approval_latency.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")

from sqlalchemy import make_url  # noqa: E402


def _first_upgrade_line(run_id, timeout: float = 30) -> datetime:
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        for log in logs:
            if log.message.startswith("upgrading "):
                return log.timestamp
        time.sleep(0.2)
    raise RuntimeError("no upgrade log line arrived")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from prefect.testing.utilities import prefect_test_harness

    from autopr.config import Settings
    from autopr.health import create_app
    from autopr_migrate.cli import approvals
    from autopr_migrate.flows.migrate import migrate
    from autopr_migrate.policy.parameters import ApprovalPolicy, MigrationPolicy
    from bench.overhead import _seeded_sqlite
    from tests.support.servers import serve

    work = Path(tempfile.mkdtemp(prefix="autopr-bench-approval-"))
    template, live = work / "template.db", work / "live.db"
    _seeded_sqlite(template)
    url = make_url(f"sqlite:///{live}")
    policy = MigrationPolicy(approval=ApprovalPolicy(poll_interval_seconds=1))
    latencies: list[float] = []
    with prefect_test_harness(server_startup_timeout=60):
        app = create_app(Settings(database_url=url, health_timeout=5))
        with serve(app) as base_url:
            os.environ.update(
                AUTOPR_DB_BENCH_URL=str(url),
                AUTOPR_DB_BENCH_HEALTH_URL=f"{base_url}/health",
                AUTOPR_DB_BENCH_BACKUP_DIR=str(work / "backups"),
            )
            for _ in range(args.repeat):
                shutil.copy(template, live)
                thread = threading.Thread(
                    target=migrate,
                    kwargs={"target": "bench", "policy": policy, "requested_by": "dev"},
                )
                thread.start()
                while not (waiting := approvals.pending()):
                    time.sleep(0.1)
                run_id = waiting[0].run.id
                approved_at = datetime.now(UTC)
                approvals.decide(str(run_id), approve=True, approver="ops", reason="bench")
                latencies.append((_first_upgrade_line(run_id) - approved_at).total_seconds())
                thread.join()
        app.state.engine.dispose()
    shutil.rmtree(work, ignore_errors=True)
    median, worst = statistics.median(latencies), max(latencies)
    print(f"approve -> first upgrade log line, poll_interval=1 s, {args.repeat} rounds")
    print(f"  median {median:.2f} s, best {min(latencies):.2f} s, worst {worst:.2f} s")
    print(f"  target <= 2 s: {'met' if worst <= 2 else 'MISSED'} (worst round)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
