"""What the application feels while a migration runs: plain ``alembic upgrade`` against the
migrate flow, on one million rows under a fixed-rate application load.

``pgbench -i -s 10`` makes ``pgbench_accounts`` (1,000,000 rows); the application is pgbench at a
fixed rate (``-R``), reading and updating accounts, with per-transaction latency logs. For each
change (a) a plain index, (b) its concurrent twin, (c) SET NOT NULL, (d) an ACCESS EXCLUSIVE
change while another session holds a long transaction on the table, the same revision is applied
once by plain ``alembic upgrade`` and once by the migrate flow, each on a fresh copy of the
database under the same load. Printed: failed application transactions, their p99 and maximum
latency, and the time application queries spent waiting for locks (sampled from
``pg_stat_activity``). Target for (d): no failed queries and no query blocked longer than the
flow's ``lock_timeout`` + 100 ms, where plain Alembic blocks them for as long as the long
transaction lasts. Then the rehearsal's impact report for each change (its copy's upgrade
under the generic workload): what it would have told the person approving.
Usage: python bench/impact.py [--scale 10] [--rate 200] [--hold 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")

ENV_PY = """
import os

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config


def run():
    handed = config.attributes.get("connection")
    if handed is not None:
        _migrate(handed)
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ["BENCH_URL"]
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        _migrate(connection)
    engine.dispose()


def _migrate(connection):
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(dialect_name="postgresql", literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run()
"""
REVISION = '''"""{name}"""
from alembic import op

revision = "{revision}"
down_revision = None


def upgrade():
{body}


def downgrade():
    pass
'''
CHANGES = {
    "a: CREATE INDEX": (
        '    op.execute("CREATE INDEX ix_bench_balance ON pgbench_accounts (abalance)")'
    ),
    "b: CREATE INDEX CONCURRENTLY": (
        "    with op.get_context().autocommit_block():\n"
        '        op.execute("CREATE INDEX CONCURRENTLY ix_bench_balance ON pgbench_accounts '
        '(abalance)")'
    ),
    "c: SET NOT NULL": (
        '    op.execute("ALTER TABLE pgbench_accounts ALTER COLUMN filler SET NOT NULL")'
    ),
    "d: ADD COLUMN behind a long transaction": (
        '    op.execute("ALTER TABLE pgbench_accounts ADD COLUMN note text")'
    ),
}
APPLICATION = """\\set aid random(1, 100000 * :scale)
\\set delta random(-5000, 5000)
BEGIN;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
END;
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--hold", type=float, default=8.0, help="(d): the long transaction, s")
    args = parser.parse_args()

    from autopr_migrate.backends.lock_sampler import LockSampler
    from tests.support.databases import admin_url_from_env, drop_database, recreate_from_template

    admin = admin_url_from_env()
    work, template = accounts_and_application(admin, args.scale, "impact")
    results = []
    try:
        with _prefect_and_health() as (health_url, run_flow):
            for name, body in CHANGES.items():
                for how in ("plain alembic", "migrate flow"):
                    database = f"{template}_run"
                    recreate_from_template(admin, database, template)
                    url = admin.set(database=database)
                    project = _project(work / uuid.uuid4().hex[:6], name, body)
                    hold = args.hold if name.startswith("d") else 0.0
                    apply = partial(_apply, how, project, url, hold, health_url, run_flow)
                    with LockSampler(url, interval=0.05) as observed:
                        latencies, failed, elapsed = _under_load(url, work, args, apply)
                    results.append((name, how, latencies, failed, observed, elapsed))
                    drop_database(admin, database)
            reports = _rehearsal_reports(admin, template, work, args, health_url)
    finally:
        drop_database(admin, template)
        shutil.rmtree(work, ignore_errors=True)
    _print(results, args)
    _print_reports(reports)
    return 0


def _rehearsal_reports(admin, template, work, args, health_url) -> list[tuple[str, object]]:
    """What the rehearsal's impact report says of each change, before anything runs for real:
    the copy's upgrade under the default generic workload at the bench's rate."""
    from autopr_migrate.operations.impact import assess
    from autopr_migrate.operations.preflight import preflight
    from autopr_migrate.operations.rehearse import rehearse
    from autopr_migrate.operations.risk import lint_plan
    from autopr_migrate.policy.parameters import ImpactPolicy, MigrationPolicy, RehearsalPolicy
    from autopr_migrate.targets.targets import resolve_target
    from tests.support.databases import drop_database, recreate_from_template

    reports = []
    policy = ImpactPolicy(rate=args.rate, clients=8)
    for name, body in CHANGES.items():
        database = f"{template}_rehearsal"
        recreate_from_template(admin, database, template)
        url = admin.set(database=database)
        project = _project(work / uuid.uuid4().hex[:6], name, body)
        _configure(project, url, health_url)
        target = resolve_target("bench")
        checks = preflight(target, "head", MigrationPolicy())
        report = lint_plan(target, checks)
        rehearsal = rehearse(target, checks, RehearsalPolicy(), impact=policy, tables=report.tables)
        reports.append(
            (name, assess(rehearsal.load, report, policy, why_not=rehearsal.load_skipped))
        )
        drop_database(admin, database)
    return reports


def _print_reports(reports) -> None:
    print()
    print("the rehearsal's impact report (budget: no wait over 500 ms, no failed query)")
    header = f"{'change':42} {'longest wait ms':>15} {'failed':>6} {'p99 ms':>8} {'base p99':>8}"
    print(f"{header}  verdict")
    for name, impact in reports:
        p99 = impact.during.p99_ms if impact.during and impact.during.p99_ms else 0.0
        base = impact.baseline.p99_ms if impact.baseline and impact.baseline.p99_ms else 0.0
        verdict = "over budget" if impact.over_budget else "within budget"
        print(
            f"{name:42} {impact.longest_wait * 1000:>15.0f} {len(impact.failed):>6} "
            f"{p99:>8.1f} {base:>8.1f}  {verdict}"
        )


def accounts_and_application(admin, scale: int, bench: str) -> tuple[Path, str]:
    """A work directory holding the application's pgbench script, and a template database
    ``pgbench -i -s scale`` made (100,000 accounts per scale step)."""
    work = Path(tempfile.mkdtemp(prefix=f"autopr-bench-{bench}-"))
    template = f"autopr_bench_{bench}_{uuid.uuid4().hex[:8]}"
    _psql(admin, f'CREATE DATABASE "{template}"')
    subprocess.run(
        ["pgbench", "-i", "-q", "-s", str(scale), *_libpq(admin), template],
        check=True,
        capture_output=True,
    )
    (work / "app.sql").write_text(APPLICATION)
    return work, template


def _apply(how, project, url, hold, health_url, run_flow) -> str:
    """Apply the revision the given way; with ``hold``, behind a long transaction."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    holder, timer = None, None
    if hold:
        holder = create_engine(url, poolclass=NullPool).connect()
        holder.execute(text("SELECT count(*) FROM pgbench_accounts WHERE aid < 10"))
        timer = threading.Timer(hold, holder.rollback)
        timer.start()
    try:
        if how == "plain alembic":
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "alembic",
                    "-c",
                    str(project / "alembic.ini"),
                    "upgrade",
                    "head",
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "BENCH_URL": url.render_as_string(hide_password=False)},
            )
            return "applied" if done.returncode == 0 else f"failed: {done.stderr[-200:]}"
        return run_flow(project, url, health_url)
    finally:
        if timer is not None:
            timer.join()
            holder.close()


def _under_load(url, work, args, apply) -> tuple[list[float], int, float]:
    """pgbench at a fixed rate for the whole time; ``apply`` two seconds in."""
    prefix = work / f"log-{uuid.uuid4().hex[:6]}"
    duration = int(args.hold + 14)
    load = subprocess.Popen(
        [
            "pgbench",
            "-n",
            "-c",
            "8",
            "-j",
            "2",
            "-R",
            str(args.rate),
            "-T",
            str(duration),
            "-D",
            f"scale={args.scale}",
            "-f",
            str(work / "app.sql"),
            "-l",
            "--log-prefix",
            str(prefix),
            *_libpq(url),
            url.database,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(2)
    started = time.monotonic()
    outcome = apply()
    elapsed = time.monotonic() - started
    output, _ = load.communicate()
    latencies = []
    for log in work.glob(f"{prefix.name}*"):
        for line in log.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                latencies.append(int(fields[2]) / 1000.0)
        log.unlink()
    failed = sum(1 for line in output.splitlines() if "aborted" in line or "ERROR" in line)
    print(f"  {outcome} ({elapsed:.1f} s)", file=sys.stderr, flush=True)
    return latencies, failed, elapsed


def _project(directory: Path, name: str, body: str) -> Path:
    versions = directory / "migrations" / "versions"
    versions.mkdir(parents=True)
    (directory / "migrations" / "env.py").write_text(ENV_PY)
    (versions / "b1_change.py").write_text(REVISION.format(name=name, revision="b1", body=body))
    (directory / "alembic.ini").write_text(
        f"[alembic]\nscript_location = {directory / 'migrations'}\n"
    )
    return directory


class _prefect_and_health:
    """The Prefect API and an always-healthy application, around the whole bench."""

    def __enter__(self):
        from contextlib import ExitStack

        from fastapi import FastAPI
        from prefect.testing.utilities import prefect_test_harness

        from tests.support.servers import serve

        app = FastAPI()

        @app.get("/health")
        def health():
            return {"status": "ok"}

        self.stack = ExitStack()
        self.stack.enter_context(prefect_test_harness(server_startup_timeout=60))
        base = self.stack.enter_context(serve(app))
        return f"{base}/health", _run_flow

    def __exit__(self, *exc):
        self.stack.close()


def _run_flow(project: Path, url, health_url: str) -> str:
    from autopr_migrate.policy.parameters import MigrationPolicy
    from tests.support.paused import migrate_approving

    _configure(project, url, health_url)
    policy = MigrationPolicy.model_validate(
        {
            "approval": {"mode": "never", "poll_interval_seconds": 1},
            "rehearsal": {"enabled": False},
            "risk": {"allow_critical": True, "override_reason": "bench"},
            "lock": {"lock_timeout_seconds": 1, "lock_retries": 5, "retry_backoff_seconds": 1},
            "preflight": {"max_transaction_seconds": 3600},
            "probe": {"consecutive_successes": 1, "interval_seconds": 0.1},
        }
    )
    state = migrate_approving(target="bench", policy=policy)
    return "applied" if state.is_completed() else f"not applied: {state.message[:120]}"


def _configure(project: Path, url, health_url: str) -> None:
    config = project / "autopr-migrate.toml"
    config.write_text(
        f'[projects.bench]\nscript_location = "{project / "migrations"}"\n'
        '[targets.bench]\nproject = "bench"\n'
    )
    os.environ.update(
        {
            "AUTOPR_MIGRATE_CONFIG": str(config),
            "AUTOPR_DB_BENCH_URL": url.render_as_string(hide_password=False),
            "AUTOPR_DB_BENCH_HEALTH_URL": health_url,
            "AUTOPR_DB_BENCH_BACKUP_DIR": str(project / "backups"),
        }
    )


def _print(results, args) -> None:
    print(
        f"pgbench_accounts: {args.scale * 100_000:,} rows; application at {args.rate} tx/s "
        f"(8 clients); (d) holds a transaction on the table for {args.hold:g} s"
    )
    print(
        f"{'change':42} {'by':14} {'tx':>6} {'failed':>6} {'p99 ms':>8} {'max ms':>8} "
        f"{'blocked s':>9} {'longest wait s':>14}"
    )
    for name, how, latencies, failed, observed, _elapsed in results:
        print(
            f"{name:42} {how:14} {len(latencies):>6} {failed:>6} {p99(latencies):>8.1f} "
            f"{max(latencies, default=0.0):>8.1f} {observed.blocked_seconds:>9.2f} "
            f"{observed.longest_wait:>14.2f}"
        )


def _libpq(url) -> list[str]:
    return [
        "-h",
        url.host or "127.0.0.1",
        "-p",
        str(url.port or 5432),
        "-U",
        url.username or "postgres",
    ]


def _psql(url, statement: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(statement)
    engine.dispose()


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies) or [0.0]
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


if __name__ == "__main__":
    raise SystemExit(main())
