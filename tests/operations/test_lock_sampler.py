"""The lock sampler sees what PostgreSQL does: a query waiting behind a lock, for how long,
behind whom, and the locks the watched session holds."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from autopr_migrate.analysis.lint import lint_sql
from autopr_migrate.backends.lock_sampler import LockSampler, OurStatement
from autopr_migrate.operations.lock_check import compare_locks


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_query_waiting_behind_a_lock_is_seen_with_its_wait_and_its_blocker(database_url):
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE accounts (id int PRIMARY KEY, balance int)"))
        connection.execute(text("INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 100) g"))
    holder = engine.connect()
    holder.execute(text("SET idle_in_transaction_session_timeout = '20s'"))
    holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar()
    holder.execute(text("ALTER TABLE accounts ADD COLUMN note text"))  # ACCESS EXCLUSIVE held

    def application() -> None:
        with engine.connect() as reader:
            reader.execute(text("SET statement_timeout = '10s'"))
            reader.execute(text("SELECT sum(balance) FROM accounts"))

    with LockSampler(database_url, interval=0.05, watched=holder_pid) as observed:
        waiting = threading.Thread(target=application)
        waiting.start()
        deadline = time.monotonic() + 10  # a busy machine: until the sampler has seen the wait
        while not observed.behind(holder_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.6)
        holder.rollback()
        waiting.join(timeout=10)
    holder.close()
    engine.dispose()
    (wait,) = observed.behind(holder_pid)
    assert wait.query.startswith("SELECT sum(balance) FROM accounts")
    assert 0.5 <= wait.seconds <= 11, wait.seconds
    assert observed.longest_wait == wait.seconds and observed.blocked_seconds >= wait.seconds
    assert ("accounts", "AccessExclusiveLock") in set().union(*observed.held.values())


def test_a_lock_on_a_table_the_plan_creates_is_no_mismatch_whenever_it_is_first_seen() -> None:
    """Alembic creates its version table in the migration's transaction; sampled first while
    the session already shows COMMIT, the lock is still the CREATE's, which no one can wait on."""
    committing = OurStatement(
        pid=1,
        query="COMMIT",
        started=datetime.now(UTC),
        first_seen=1.0,
        last_seen=1.0,
        held={"alembic_version": {"AccessExclusiveLock"}, "orders": {"ShareLock"}},
        acquired={("alembic_version", "AccessExclusiveLock"), ("orders", "ShareLock")},
        running_samples=1,
    )
    creates = lint_sql(
        "CREATE TABLE alembic_version (version_num varchar(32) NOT NULL);"
        "CREATE INDEX ix ON orders (note);"
        "INSERT INTO alembic_version (version_num) VALUES ('c1');",
        squawk=False,
    )
    (judged,) = compare_locks([committing], creates)
    assert judged.mismatches == []
    existing = lint_sql("UPDATE alembic_version SET version_num = 'c1';", squawk=False)
    (judged,) = compare_locks([committing], existing)
    assert [m.message for m in judged.mismatches] == [
        "`COMMIT`: PostgreSQL held ACCESS EXCLUSIVE on alembic_version; the analyzer predicted "
        "ROW EXCLUSIVE",
        "`COMMIT`: PostgreSQL held SHARE on orders; the analyzer predicted no lock",
    ]
