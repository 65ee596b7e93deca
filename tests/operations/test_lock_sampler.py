"""The lock sampler sees what PostgreSQL does: a query waiting behind a lock, for how long,
behind whom, and the locks the watched session holds."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from autopr_migrate.backends.lock_sampler import LockSampler


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
