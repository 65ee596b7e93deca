"""Before a statement whose lock blocks writes, a long transaction holding a conflicting lock on
its table is not queued behind: the statement is not sent, and the attempt is a lock timeout.
A ledger an older version wrote gets the newer columns when a run writes to it."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from autopr_migrate.backends.session import is_lock_timeout
from autopr_migrate.operations.queue_guard import (
    LongTransactionAhead,
    no_queue_behind_long_transactions,
)
from autopr_migrate.policy.parameters import LockPolicy
from autopr_migrate.store import ledger

GUARD = LockPolicy(queue_behind_seconds=0.5, lock_timeout_seconds=5)


@pytest.fixture
def accounts(database_url):
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE accounts (id int PRIMARY KEY, balance int)"))
        connection.execute(text("INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 100) g"))
    yield engine
    engine.dispose()


def _holding(engine, statement: str):
    holder = engine.connect()
    holder.execute(text("SET idle_in_transaction_session_timeout = '20s'"))
    holder.execute(text(statement))
    return holder


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_transaction_that_began_after_the_migrations_is_still_seen_as_long(accounts):
    """The migration's own transaction is older than the report: its start is not the clock."""
    with accounts.connect() as migrating:
        migrating.execute(text("SELECT 1"))  # the migration's transaction begins
        holder = _holding(accounts, "SELECT count(*) FROM accounts")  # ACCESS SHARE
        time.sleep(0.8)
        started = time.monotonic()
        with (
            no_queue_behind_long_transactions(GUARD),
            pytest.raises(LongTransactionAhead) as refused,
        ):
            migrating.execute(text("ALTER TABLE accounts ADD COLUMN note text"))
        assert time.monotonic() - started < 1  # refused at once, not after lock_timeout
        migrating.rollback()
        holder.rollback()
        holder.close()
    assert is_lock_timeout(refused.value)  # retried by the lock policy
    assert "holds a conflicting lock on accounts" in str(refused.value)
    assert "note" not in {c["name"] for c in inspect(accounts).get_columns("accounts")}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_long_lock_that_does_not_conflict_is_no_reason_to_wait(accounts):
    holder = _holding(accounts, "SELECT count(*) FROM accounts")  # ACCESS SHARE: reads go on
    time.sleep(0.8)
    try:
        with accounts.connect() as migrating, no_queue_behind_long_transactions(GUARD):
            migrating.execute(text("CREATE INDEX ix_accounts_balance ON accounts (balance)"))
            migrating.commit()
    finally:
        holder.rollback()
        holder.close()
    assert "ix_accounts_balance" in {i["name"] for i in inspect(accounts).get_indexes("accounts")}


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_a_ledger_written_by_an_older_version_gets_the_new_column(database_url):
    engine = create_engine(database_url, poolclass=NullPool)
    key = "serial" if engine.dialect.name == "postgresql" else "integer"
    with engine.begin() as connection:  # the table as it was before the impact column
        connection.execute(
            text(
                f"CREATE TABLE {ledger.LEDGER_TABLE} (id {key} PRIMARY KEY, target varchar(40) "
                "NOT NULL, operation varchar(20) NOT NULL, status varchar(20) NOT NULL, "
                "from_revision varchar(64), to_revision varchar(64), revision_checksums text "
                "NOT NULL, flow_run_id varchar(36), flow_run_name varchar(200), requested_by "
                "varchar(200), approved_by varchar(200), approval_reason text, backup_path "
                "text, backup_sha256 varchar(64), started_at timestamp with time zone NOT NULL, "
                "finished_at timestamp with time zone, duration_seconds float, timings text, "
                "message text)"
            )
        )
    with engine.connect() as connection:
        assert ledger.unfinished(connection) == []  # reads the older table as it is
        connection.rollback()
        entry = ledger.start(connection, target="app", operation="upgrade")
        ledger.finish(connection, entry, status=ledger.SUCCEEDED, impact='{"upgrade": {}}')
        row = connection.execute(text(f"SELECT status, impact FROM {ledger.LEDGER_TABLE}")).one()
    engine.dispose()
    assert tuple(row) == ("succeeded", '{"upgrade": {}}')
