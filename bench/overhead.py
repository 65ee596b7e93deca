"""What the migrate flow costs, measured against the tools it wraps, in one process run.

1. SQLite: the whole flow (approval by policy) against plain Alembic ``upgrade head`` on the
   same history and the same seeded database. Target: the flow adds at most 2 s beyond its
   backup.
2. PostgreSQL, a database of at least 1 million rows: our backup step against a default
   ``pg_dump -Fc`` (target: at most 0.6 of its time at no more than 1.15 of its size), and
   our restore against a default single-job ``pg_restore`` (target: at most 0.7 of its time).

Each figure is the median of ``--repeat`` runs. Usage:
    python bench/overhead.py [--rows 1000000] [--repeat 3] [--skip-postgresql]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")

from sqlalchemy import make_url, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from autopr.database import make_engine  # noqa: E402

START = "e5c8f2a1d934"
ADMIN_URL = os.environ.get("AUTOPR_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1/postgres")


def median_of(repeat: int, run: Callable[[], float]) -> float:
    return statistics.median(run() for _ in range(repeat))


def verdict(value: float, target: float, unit: str = "") -> str:
    return f"target <= {target:g}{unit}: {'met' if value <= target else 'MISSED'}"


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# --- SQLite: flow against plain Alembic -------------------------------------------------


def _seeded_sqlite(template: Path, rows: int = 50_000) -> None:
    from autopr_migrate.history import commands as alembic_ops
    from autopr_migrate.targets.project import default_project
    from demo.seed import seed

    engine = make_engine(make_url(f"sqlite:///{template}"), poolclass=NullPool)
    with engine.connect() as connection:
        alembic_ops.upgrade(default_project(), connection, START)
    with engine.begin() as connection:
        seed(connection)
        connection.execute(
            text(
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < :rows) "
                "INSERT INTO workflow_executions (workflow_id, status, duration_seconds) "
                "SELECT x % 20 + 1, 'succeeded', x * 0.01 FROM n"
            ),
            {"rows": rows},
        )
    engine.dispose()


def bench_sqlite(repeat: int) -> None:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from autopr.config import Settings
    from autopr.health import create_app
    from autopr_migrate.flows.migrate import migrate
    from autopr_migrate.history import commands as alembic_ops
    from autopr_migrate.policy.parameters import ApprovalPolicy, MigrationPolicy
    from autopr_migrate.targets.project import default_project
    from tests.support.servers import serve

    NO_APPROVAL = MigrationPolicy(approval=ApprovalPolicy(mode="never"))

    work = Path(tempfile.mkdtemp(prefix="autopr-bench-"))
    template = work / "template.db"
    _seeded_sqlite(template)
    live = work / "live.db"
    url = make_url(f"sqlite:///{live}")

    def fresh() -> None:
        shutil.copy(template, live)

    def plain_alembic() -> float:
        fresh()
        engine = make_engine(url, poolclass=NullPool)
        with engine.connect() as connection:
            seconds = timed(lambda: alembic_ops.upgrade(default_project(), connection, "head"))
        engine.dispose()
        return seconds

    backups: list[float] = []
    steps: list[dict[str, float]] = []

    def flow() -> float:
        fresh()
        seconds = timed(
            lambda: migrate(target="bench", revision="head", policy=NO_APPROVAL, return_state=True)
        )
        timings = _ledger_timings(live)
        backups.append(timings["backup"])
        steps.append(timings)
        return seconds

    with prefect_test_harness(server_startup_timeout=60):
        app = create_app(Settings(database_url=url, health_timeout=5))
        with serve(app) as base_url:
            os.environ.update(
                AUTOPR_DB_BENCH_URL=str(url),
                AUTOPR_DB_BENCH_HEALTH_URL=f"{base_url}/health",
                AUTOPR_DB_BENCH_BACKUP_DIR=str(work / "backups"),
            )
            fresh()
            migrate(
                target="bench", revision="head", policy=NO_APPROVAL, return_state=True
            )  # warm imports and the API
            alembic_seconds = median_of(repeat, plain_alembic)
            flow_seconds = median_of(repeat, flow)
            with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                no_heartbeat = median_of(repeat, flow)
        app.state.engine.dispose()
    backup_seconds = statistics.median(backups)
    overhead = flow_seconds - alembic_seconds - backup_seconds
    probe = statistics.median(t["probe"] for t in steps)
    in_steps = statistics.median(sum(t.values()) for t in steps)
    ratio = flow_seconds / alembic_seconds
    print("SQLite: migrate flow vs plain `alembic upgrade head` (same history, same rows)")
    print(f"  plain alembic upgrade:    {alembic_seconds:8.3f} s")
    print(f"  migrate flow:             {flow_seconds:8.3f} s  (ratio {ratio:.1f}x)")
    print(f"  of which backup:          {backup_seconds:8.3f} s")
    print(f"  flow beyond the backup:   {overhead:8.3f} s  ({verdict(overhead, 2, ' s')})")
    print(
        f"    in its steps: {in_steps:.3f} s, of which the health probe's policy wait "
        f"{probe:.3f} s; outside them (flow engine start and finish, lock, ledger, report, "
        f"events): {flow_seconds - in_steps:.3f} s"
    )
    beyond = no_heartbeat - alembic_seconds - backup_seconds
    print(
        f"  the same flow with Prefect's flow-run heartbeat off: {no_heartbeat:.3f} s "
        f"(beyond the backup: {beyond:.3f} s); at the end of a run the engine joins the "
        f"heartbeat thread, which sleeps in 1 s steps"
    )
    shutil.rmtree(work, ignore_errors=True)


def _ledger_timings(database: Path) -> dict[str, float]:
    import json
    import sqlite3

    with sqlite3.connect(database) as connection:
        (timings,) = connection.execute(
            "SELECT timings FROM autopr_migration_ledger ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return json.loads(timings)


# --- PostgreSQL: backup and restore against the plain tools -----------------------------


def _admin(sql: str) -> None:
    engine = make_engine(make_url(ADMIN_URL), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(sql)
    engine.dispose()


def _big_database(name: str, rows: int) -> str:
    from autopr_migrate.history import commands as alembic_ops
    from autopr_migrate.targets.project import default_project

    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name)
    engine = make_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        alembic_ops.upgrade(default_project(), connection, "head")
    with engine.begin() as connection:
        for statement in (
            "INSERT INTO users (username, email) SELECT 'u'||g, 'u'||g||'@example.com' "
            "FROM generate_series(1, 10000) g",
            "INSERT INTO repositories (owner, name) SELECT 'o'||(g % 100), 'r'||g "
            "FROM generate_series(1, 1000) g",
            "INSERT INTO pull_requests (repository_id, number, title, author_id) SELECT "
            "g % 1000 + 1, g, 'Fix issue '||g||' in the workflow engine', g % 10000 + 1 "
            "FROM generate_series(1, 100000) g",
            "INSERT INTO workflows (name, status, version) SELECT 'wf'||g, "
            "(ARRAY['active','archived','draft'])[g % 3 + 1], 1 FROM generate_series(1, 1000) g",
            "INSERT INTO workflow_executions (workflow_id, pull_request_id, status, started_at, "
            "finished_at, duration_seconds) SELECT g % 1000 + 1, g % 100000 + 1, "
            "(ARRAY['succeeded','failed','running'])[g % 3 + 1], now() - g * interval '1 s', "
            f"now(), random() * 100 FROM generate_series(1, {rows}) g",
        ):
            connection.execute(text(statement))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
        total = connection.scalar(text("SELECT pg_database_size(current_database())"))
    engine.dispose()
    print(f"PostgreSQL: {name}, {rows + 112_000} rows, {total / 2**20:.0f} MiB")
    return url.render_as_string(hide_password=False)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def bench_postgresql(rows: int, repeat: int) -> None:
    from autopr_migrate.backends import pgtools
    from autopr_migrate.backends.postgresql import BACKEND
    from autopr_migrate.operations.backup import take_backup
    from autopr_migrate.policy.parameters import BackupPolicy
    from autopr_migrate.targets.targets import resolve_target

    name = "autopr_bench_overhead"
    url = _big_database(name, rows)
    work = Path(tempfile.mkdtemp(prefix="autopr-bench-pg-"))
    os.environ.update(
        AUTOPR_DB_BENCHPG_URL=url,
        AUTOPR_DB_BENCHPG_HEALTH_URL="http://127.0.0.1:1/",
        AUTOPR_DB_BENCHPG_BACKUP_DIR=str(work / "ours"),
    )
    target = resolve_target("benchpg")
    pg_url = make_url(url)
    default_dump = work / "default.dump"

    def default_pg_dump() -> float:
        default_dump.unlink(missing_ok=True)
        args = [pgtools.binary("pg_dump"), "-Fc", f"--file={default_dump}"]
        return timed(lambda: pgtools.run(args, url=pg_url))

    ours: list = []

    size = _db_bytes(pg_url)

    def our_backup() -> float:
        shutil.rmtree(work / "ours", ignore_errors=True)
        return timed(lambda: ours.append(take_backup(target, BackupPolicy(), database_bytes=size)))

    dump_default = median_of(repeat, default_pg_dump)
    dump_ours = median_of(repeat, our_backup)
    backup = ours[-1]
    size_default, size_ours = _size(default_dump), _size(backup.path)

    def default_pg_restore() -> float:
        _admin('DROP DATABASE IF EXISTS "autopr_bench_restore" WITH (FORCE)')
        _admin('CREATE DATABASE "autopr_bench_restore"')
        scratch = pg_url.set(database="autopr_bench_restore")
        args = [pgtools.binary("pg_restore"), "--dbname=autopr_bench_restore", str(default_dump)]
        return timed(lambda: pgtools.run(args, url=scratch))

    def our_restore() -> float:
        jobs = backup.jobs if backup.format == "directory" else 1
        return timed(lambda: BACKEND.restore(target, backup.path, jobs=jobs))

    restore_default = median_of(repeat, default_pg_restore)
    restore_ours = median_of(repeat, our_restore)
    _admin('DROP DATABASE IF EXISTS "autopr_bench_restore" WITH (FORCE)')
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    shutil.rmtree(work, ignore_errors=True)

    time_ratio, size_ratio = dump_ours / dump_default, size_ours / size_default
    restore_ratio = restore_ours / restore_default
    print(f"  default pg_dump -Fc:      {dump_default:8.3f} s  {size_default / 2**20:8.1f} MiB")
    print(
        f"  our backup:               {dump_ours:8.3f} s  {size_ours / 2**20:8.1f} MiB  "
        f"({backup.format} format, -Z{backup.compression}, {backup.jobs} job(s))"
    )
    print(
        f"    time ratio {time_ratio:.2f} ({verdict(time_ratio, 0.6)}), "
        f"size ratio {size_ratio:.2f} ({verdict(size_ratio, 1.15)})"
    )
    print(
        f"  default pg_restore:       {restore_default:8.3f} s  (one job, into an empty database)"
    )
    print(f"  our restore:              {restore_ours:8.3f} s  (over the live database)")
    print(f"    time ratio {restore_ratio:.2f} ({verdict(restore_ratio, 0.7)})")


def _db_bytes(url) -> int:
    engine = make_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        size = int(connection.scalar(text("SELECT pg_database_size(current_database())")))
    engine.dispose()
    return size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-postgresql", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    if not args.skip_sqlite:
        bench_sqlite(args.repeat)
    if not args.skip_postgresql:
        bench_postgresql(args.rows, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
