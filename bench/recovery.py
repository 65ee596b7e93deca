"""What proving a backup and checking a target cost, on a PostgreSQL database of 1 M rows.

1. ``autopr-migrate restore-test`` (sha256, restore into a scratch database, revision and
   every table's row count, drop) against the bare ``pg_restore`` of the same backup into an
   empty database: the ratio is what the verification adds.
2. One target of the ``check`` flow (revision, model drift, applied revision checksums,
   ledger, backups with their sha256, health) on the same database.

Usage:
    python bench/recovery.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")

from sqlalchemy import make_url  # noqa: E402

from bench.overhead import _admin, _big_database, median_of, timed  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from autopr_migrate.backends import pgtools
    from autopr_migrate.cli.backups import run_restore_test
    from autopr_migrate.operations.backup import take_backup
    from autopr_migrate.operations.target_check import check_target
    from autopr_migrate.policy.parameters import BackupPolicy, MigrationPolicy
    from autopr_migrate.targets.targets import resolve_target

    name = "autopr_bench_recovery"
    url = _big_database(name, args.rows)
    work = Path(tempfile.mkdtemp(prefix="autopr-bench-recovery-"))
    os.environ.update(
        AUTOPR_DB_BENCHREC_URL=url,
        AUTOPR_DB_BENCHREC_HEALTH_URL="http://127.0.0.1:1/",
        AUTOPR_DB_BENCHREC_BACKUP_DIR=str(work),
    )
    target = resolve_target("benchrec")
    try:
        backup = take_backup(target, BackupPolicy(format="custom"), label="manual")

        def bare_restore() -> float:
            _admin('DROP DATABASE IF EXISTS "autopr_bench_bare" WITH (FORCE)')
            _admin('CREATE DATABASE "autopr_bench_bare"')
            scratch = make_url(url).set(database="autopr_bench_bare")
            command = [pgtools.binary("pg_restore"), "--dbname=autopr_bench_bare", str(backup.path)]
            return timed(lambda: pgtools.run(command, url=scratch))

        results: list = []

        def verified_restore() -> float:
            return timed(lambda: results.append(run_restore_test(target, backup.path.name)))

        bare = median_of(args.repeat, bare_restore)
        verified = median_of(args.repeat, verified_restore)
        assert all(result.passed for result in results), results[-1].lines()
        check = median_of(
            args.repeat, lambda: timed(lambda: check_target(target, MigrationPolicy()))
        )
    finally:
        _admin('DROP DATABASE IF EXISTS "autopr_bench_bare" WITH (FORCE)')
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)

    print(f"  backup: {backup.bytes / 2**20:.1f} MiB ({backup.format})")
    print(f"  bare pg_restore into an empty database:      {bare:7.2f} s")
    print(
        f"  restore-test (sha256, restore, verify, drop):{verified:7.2f} s  "
        f"ratio {verified / bare:.2f}"
    )
    print(f"  check of one target:                         {check:7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
