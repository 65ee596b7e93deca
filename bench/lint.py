"""What linting and rehearsing cost.

1. Lint time for 1,000 statements of migration SQL (our analyzer and squawk). Target: < 2 s.
2. A rehearsal (dump, scratch copy, upgrade, downgrade, upgrade, drop) against a direct upgrade
   of the same database, on PostgreSQL; the ratio is printed.

Usage: python bench/lint.py [--statements 1000] [--rows 200000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from sqlalchemy import make_url, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from autopr.database import make_engine  # noqa: E402

ADMIN_URL = os.environ.get("AUTOPR_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1/postgres")
SHAPES = (
    "CREATE INDEX ix_{n} ON workflow_executions (status, started_at);",
    "CREATE INDEX CONCURRENTLY ix_c{n} ON workflows (name);",
    "ALTER TABLE workflows ADD COLUMN c{n} integer;",
    "ALTER TABLE workflows ALTER COLUMN c{n} TYPE bigint;",
    "ALTER TABLE workflows ADD CONSTRAINT ck_{n} CHECK (version > 0) NOT VALID;",
    "UPDATE workflows SET version = version + 1 WHERE id = {n};",
    "ALTER TABLE workflow_executions ADD CONSTRAINT fk_{n} FOREIGN KEY (workflow_id) "
    "REFERENCES workflows (id);",
    "ALTER TABLE workflows RENAME COLUMN c{n} TO d{n};",
    "DROP INDEX ix_{n};",
    "ALTER TABLE workflows DROP COLUMN d{n};",
)


def bench_lint(count: int) -> None:
    from autopr_migrate.analysis.lint import lint_sql

    sql = "\n".join(SHAPES[n % len(SHAPES)].format(n=n) for n in range(count))
    lint_sql(sql)  # warm
    started = time.perf_counter()
    report = lint_sql(sql)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    lint_sql(sql, squawk=False)
    ours = time.perf_counter() - started
    verdict = "met" if seconds < 2 else "MISSED"
    print(
        f"lint of {count} statements: {seconds:.3f} s ({len(report.findings)} findings; our "
        f"analyzer alone {ours:.3f} s); target < 2 s: {verdict}"
    )


def bench_rehearsal(rows: int) -> None:

    from autopr_migrate.history import commands as alembic_ops
    from autopr_migrate.operations.preflight import PreflightReport
    from autopr_migrate.operations.probe import HealthSnapshot
    from autopr_migrate.operations.rehearse import rehearse
    from autopr_migrate.policy.parameters import RehearsalPolicy
    from autopr_migrate.targets.project import default_project
    from autopr_migrate.targets.targets import resolve_target

    admin = make_engine(make_url(ADMIN_URL), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    name = "autopr_bench_rehearsal"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name)
    engine = make_engine(url, poolclass=NullPool)
    start = "e5c8f2a1d934"
    with engine.connect() as connection:
        alembic_ops.upgrade(default_project(), connection, start)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO repositories (id, owner, name) VALUES (1, 'o', 'r')"))
        connection.execute(
            text(
                "INSERT INTO pull_requests (repository_id, number, title) "
                f"SELECT 1, g, 'pr ' || g FROM generate_series(1, {rows}) g"
            )
        )
    os.environ.update(
        AUTOPR_DB_BENCHR_URL=url.render_as_string(hide_password=False),
        AUTOPR_DB_BENCHR_HEALTH_URL="http://127.0.0.1:1/health",
        AUTOPR_DB_BENCHR_BACKUP_DIR=str(ROOT / ".bench-backups"),
    )
    target = resolve_target("benchr")
    head = alembic_ops.heads(default_project())[0]
    checks = PreflightReport(
        start,
        head,
        alembic_ops.pending(default_project(), start, head),
        0,
        0,
        HealthSnapshot(200, "ok"),
    )
    started = time.perf_counter()
    result = rehearse(target, checks, RehearsalPolicy())
    rehearsal = time.perf_counter() - started
    with engine.connect() as connection:
        started = time.perf_counter()
        alembic_ops.upgrade(default_project(), connection, "head")
        direct = time.perf_counter() - started
    engine.dispose()
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()
    print(
        f"rehearsal of {start} -> head on {rows:,} pull requests: {rehearsal:.3f} s; direct "
        f"upgrade {direct:.3f} s; ratio {rehearsal / direct:.1f}x"
    )
    print(f"  {result.line()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    bench_lint(args.statements)
    bench_rehearsal(args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
