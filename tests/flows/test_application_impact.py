"""What the application feels, in whole migrate runs: the budget gates approval, and the
watched upgrade drains the lock queue it would otherwise pile up behind a long transaction."""

from __future__ import annotations

import json
import threading
import time
from contextlib import suppress

import pytest
from prefect.flow_runs import resume_flow_run
from prefect.input import read_flow_run_input
from prefect.input.run_input import keyset_from_paused_state
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from autopr_migrate.model import LEDGER_TABLE
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, ledger_rows
from tests.support.alembic_run import revision_of
from tests.support.application import reading
from tests.support.paused import BackgroundRun
from tests.support.prefect_api import logged, run_artifacts
from tests.support.revisions import ADD_PRIORITY, add_revision

PLAIN_INDEX = (
    'op.execute("CREATE INDEX ix_orders_note ON orders (note)")',
    'op.execute("DROP INDEX ix_orders_note")',
)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_plan_over_the_impact_budget_waits_for_a_person_with_the_numbers_first(
    migration_target, history
):
    engine = at_head_with_rows(migration_target.engine())
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE orders (id bigint PRIMARY KEY, note text)"))
        connection.execute(
            text("INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 200000) g")
        )
    goal = add_revision(history, "aaaa00000150", PLAIN_INDEX, message="index orders.note")
    policy = fast_policy(
        approval={"mode": "never", "timeout_seconds": 60},  # the budget overrides it
        rehearsal={"enabled": True},
        impact={"rate": 200, "baseline_seconds": 1, "max_wait_ms": 50},
    )
    background = BackgroundRun(target="app", revision="head", policy=policy)
    run = background.paused()
    description = read_flow_run_input(
        keyset_from_paused_state(run.state)["description"], flow_run_id=run.id
    )
    first, second = description.splitlines()[0], description.splitlines()[2]
    assert first == "**Risk: HIGH**"
    assert second.startswith("**Application impact on the copy** (**over budget**: a query waited")
    assert "`CREATE INDEX ix_orders_note ON orders (note)`" in description
    impact = json.loads(run_artifacts(run.id)["rehearsal-impact-app"])
    (build,) = [row for row in impact if row["statement"].startswith("CREATE INDEX")]
    assert build["longest wait ms"] > 50 and "orders: SHARE" in build["locks held"]
    resume_flow_run(
        run.id, run_input={"decision": "reject", "approver": "ops", "reason": "concurrently"}
    )
    assert background.result().is_failed()
    assert revision_of(engine) != goal


def _ends_once_the_upgrade_began(engine, holder, hold: float) -> None:
    """Ends the holder's transaction ``hold`` seconds after the run's ledger row appeared (it
    is written right before the upgrade), however long the run took to get there."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with suppress(DBAPIError), engine.connect() as connection:
            if connection.execute(text(f"SELECT count(*) FROM {LEDGER_TABLE}")).scalar():
                break
        time.sleep(0.1)
    time.sleep(hold)
    holder.rollback()


def _behind_a_long_transaction(migration_target, history, lock: dict):
    """An application reading ``workflows`` every 50 ms while a session holds a transaction on
    it until 2 s into the upgrade, which adds a column to it; the run's state and each read's
    latency."""
    engine = at_head_with_rows(migration_target.engine())
    goal = add_revision(history, "aaaa00000151", ADD_PRIORITY)
    holder = create_engine(migration_target.url, poolclass=NullPool).connect()
    holder.execute(text("SET idle_in_transaction_session_timeout = '60s'"))
    holder.execute(text("SELECT count(*) FROM workflows"))  # ACCESS SHARE until it ends
    ends = threading.Thread(target=_ends_once_the_upgrade_began, args=(engine, holder, 2))
    policy = fast_policy(
        lock={"lock_timeout_seconds": 10, "lock_retries": 8, "retry_backoff_seconds": 0.5, **lock},
        impact={"rehearse_under_load": False, "max_wait_ms": 300},
    )
    ends.start()
    try:
        with reading(migration_target.url) as latencies:
            state = BackgroundRun(target="app", revision="head", policy=policy).result(timeout=90)
    finally:
        ends.join()
        holder.close()
    assert state.is_completed(), state.message
    assert revision_of(engine) == goal
    return state, latencies, json.loads(ledger_rows(engine)[-1]["impact"])["upgrade"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_blocking_statement_waits_out_a_long_transaction_instead_of_queueing_behind_it(
    migration_target, history
):
    """Plain Alembic would block the application for as long as the transaction lasts."""
    state, latencies, recorded = _behind_a_long_transaction(
        migration_target, history, {"queue_behind_seconds": 0.2}
    )
    assert max(latencies) < 0.3, max(latencies)  # nothing queued: nothing waited
    logged(state.state_details.flow_run_id, r"not queueing behind a transaction open for \d+ s")
    # A read may meet the ALTER's own lock for the moment its revision takes to commit.
    assert recorded["longest_wait_ms"] < 300 and recorded["statements_cancelled"] == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_alter_queued_behind_a_long_transaction_is_cancelled_before_the_queue_piles_up(
    migration_target, history
):
    """Without waiting transactions out, the ALTER queues; once a query has waited 300 ms
    behind it, it is cancelled and retried, so the queue drains."""
    state, latencies, recorded = _behind_a_long_transaction(
        migration_target, history, {"queue_behind_seconds": 0}
    )
    assert max(latencies) < 1.0, max(latencies)  # lock_timeout is 10 s, the holder 2 s more
    run_id = state.state_details.flow_run_id
    logged(run_id, r"cancelled our statement while it was queued for its lock")
    assert recorded["statements_cancelled"] >= 1 and recorded["longest_wait_ms"] < 1000
    assert "## Application impact" in run_artifacts(run_id)["migration-report-app"]


SAFE_CHANGES = (
    "from autopr_migrate.ops import safe\n"
    'safe.create_index("ix_workflows_name_safe", "workflows", ["name"])\n'
    'safe.backfill("workflows", "name = name || \'.\'", batch_size=5)',
    'from autopr_migrate.ops import safe\nsafe.drop_index("ix_workflows_name_safe")',
)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_safe_operations_run_inside_the_migrate_flow_with_the_backfill_s_progress(
    migration_target, history
):
    engine = at_head_with_rows(migration_target.engine())
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT count(*) FROM workflows")).scalar()
    goal = add_revision(history, "aaaa00000152", SAFE_CHANGES)
    state = BackgroundRun(target="app", revision="head", policy=fast_policy()).result(timeout=90)
    assert state.is_completed(), state.message
    assert revision_of(engine) == goal
    with engine.connect() as connection:
        dotted = connection.execute(text("SELECT count(*) FROM workflows WHERE name LIKE '%.'"))
        assert dotted.scalar() == rows > 5  # every row once, over several batches
        valid = (
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_workflows_name_safe'::regclass"
        )
        assert connection.execute(text(valid)).scalar() is True
    artifacts = run_artifacts(state.state_details.flow_run_id)
    assert float(artifacts["backfill-progress-app"]) == 100
