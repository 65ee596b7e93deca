"""Each safe operation against its naive twin, on one million rows under a fixed-rate load.

``pgbench -i -s 10`` makes ``pgbench_accounts`` (1,000,000 rows) and ``pgbench_branches``; the
application is the impact bench's (a read and an update of one account, 200 transactions a
second from 8 clients). Each change is applied by plain ``alembic upgrade head`` once as the
naive operation and once as ``autopr_migrate.ops.safe``'s, each on a fresh copy of the database
under the same load. Printed: failed application transactions, p99 and maximum latency, the
time application queries spent waiting for locks, the longest wait, and whether the safe
operation's schema is the naive one's (``pg_dump --schema-only``). Target: with the safe
operation, no application query waits longer than its ``lock_timeout`` (1 s).
Usage: python bench/safe_operations.py [--scale 10] [--rate 200] [--only backfill ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.impact import _project, _under_load, accounts_and_application, p99  # noqa: E402

SAFE = "    from autopr_migrate.ops import safe\n    import sqlalchemy as sa\n"
CHANGES = {
    "create_index": (
        '    op.create_index("ix_balance", "pgbench_accounts", ["abalance"])',
        '    safe.create_index("ix_balance", "pgbench_accounts", ["abalance"])',
    ),
    "add_foreign_key": (
        '    op.create_foreign_key("fk_branch", "pgbench_accounts", "pgbench_branches", '
        '["bid"], ["bid"])',
        '    safe.add_foreign_key("fk_branch", "pgbench_accounts", "pgbench_branches", '
        '["bid"], ["bid"])',
    ),
    "add_check": (
        '    op.create_check_constraint("ck_balance", "pgbench_accounts", '
        '"abalance > -1000000000")',
        '    safe.add_check("ck_balance", "pgbench_accounts", "abalance > -1000000000")',
    ),
    "set_not_null": (
        '    op.alter_column("pgbench_accounts", "filler", nullable=False)',
        '    safe.set_not_null("pgbench_accounts", "filler")',
    ),
    "add_unique": (
        '    op.create_unique_constraint("uq_aid_bid", "pgbench_accounts", ["aid", "bid"])',
        '    safe.add_unique("uq_aid_bid", "pgbench_accounts", ["aid", "bid"])',
    ),
    "add_column": (
        '    import sqlalchemy as sa\n    op.add_column("pgbench_accounts", sa.Column("urgent", '
        "sa.Boolean(), nullable=False, server_default=sa.false()))",
        '    safe.add_column("pgbench_accounts", sa.Column("urgent", sa.Boolean(), '
        "nullable=False, server_default=sa.false()))",
    ),
    "backfill": (
        '    op.execute("UPDATE pgbench_accounts SET filler = upper(filler)")',
        '    safe.backfill("pgbench_accounts", "filler = upper(filler)", key="aid", '
        "batch_size=5000)",
    ),
    "recording_backfill": (
        '    op.execute("CREATE TABLE filler_changes (aid int, was text)")\n'
        '    op.execute("INSERT INTO filler_changes SELECT aid, filler FROM pgbench_accounts")\n'
        '    op.execute("UPDATE pgbench_accounts SET filler = upper(filler)")',
        '    op.execute("CREATE TABLE filler_changes (aid int, was text)")\n'
        '    safe.backfill("pgbench_accounts", "filler = upper(filler)", key="aid", '
        'batch_size=5000, record_into="filler_changes", record={"aid": "aid", "was": "filler"})',
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--only", nargs="+", choices=sorted(CHANGES), default=sorted(CHANGES))
    args = parser.parse_args()

    from autopr_migrate.backends.lock_sampler import LockSampler
    from tests.support.databases import (
        admin_url_from_env,
        drop_database,
        recreate_from_template,
        schema_only,
    )

    admin = admin_url_from_env()
    work, template = accounts_and_application(admin, args.scale, "safe")
    results = []
    try:
        for name, (naive, safe) in CHANGES.items():
            if name not in args.only:
                continue
            schemas = {}
            for how, body in (("naive", naive), ("safe", SAFE + safe)):
                database = f"{template}_run"
                recreate_from_template(admin, database, template)
                url = admin.set(database=database)
                project = _project(work / uuid.uuid4().hex[:6], name, body)
                load = SimpleNamespace(
                    rate=args.rate, scale=args.scale, hold=16 if "backfill" in name else 0
                )
                with LockSampler(url, interval=0.05) as observed:
                    latencies, failed, elapsed = _under_load(
                        url, work, load, lambda project=project, url=url: _apply(project, url)
                    )
                schemas[how] = schema_only(url)
                results.append((name, how, latencies, failed, observed, elapsed))
                drop_database(admin, database)
            results[-1] += (schemas["naive"] == schemas["safe"],)
    finally:
        drop_database(admin, template)
        shutil.rmtree(work, ignore_errors=True)
    _print(results, args)
    return 0


def _apply(project: Path, url) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(project / "alembic.ini"), "upgrade", "head"],
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_URL": url.render_as_string(hide_password=False)},
    )
    return "applied" if done.returncode == 0 else f"failed: {done.stderr[-300:]}"


def _print(results, args) -> None:
    print(
        f"pgbench_accounts: {args.scale * 100_000:,} rows; application at {args.rate} tx/s "
        f"(8 clients); safe operations with lock_timeout 1 s"
    )
    print(
        f"{'operation':18} {'how':6} {'tx':>6} {'failed':>6} {'p99 ms':>8} {'max ms':>8} "
        f"{'blocked s':>9} {'longest wait s':>14} {'seconds':>8}  same schema"
    )
    for name, how, latencies, failed, observed, elapsed, *same in results:
        print(
            f"{name:18} {how:6} {len(latencies):>6} {failed:>6} {p99(latencies):>8.1f} "
            f"{max(latencies, default=0.0):>8.1f} {observed.blocked_seconds:>9.2f} "
            f"{observed.longest_wait:>14.2f} {elapsed:>8.1f}  "
            f"{('yes' if same[0] else 'NO') if same else ''}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
