"""Locks: table locks held by others, and two runs at once."""

from __future__ import annotations

import threading

import pytest
from prefect.flow_runs import resume_flow_run
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from autopr.config import Settings
from autopr.database import make_engine
from autopr.health import create_app
from autopr_migrate.flows.migrate import migrate
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums, ledger_rows, schema
from tests.support.alembic_run import revision_of
from tests.support.paused import BackgroundRun
from tests.support.prefect_api import task_run_counts
from tests.support.revisions import ADD_PRIORITY, SLOW, add_revision
from tests.support.servers import serve

pytestmark = pytest.mark.both_dialects  # their behaviour differs by dialect

LOCK_POLICY = {"lock_timeout_seconds": 0.5, "lock_retries": 2, "retry_backoff_seconds": 0.2}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_lock_timeout_is_retried_then_fails_with_nothing_changed(migration_target, history) -> None:
    engine = at_head_with_rows(migration_target.engine())
    add_revision(history, "aaaa00000020", ADD_PRIORITY)
    before = (revision_of(engine), checksums(engine), schema(engine))

    with engine.connect() as holder:
        holder.execute(text("SELECT count(*) FROM workflows"))  # ACCESS SHARE until rollback
        state = migrate(target="app", policy=fast_policy(lock=LOCK_POLICY), return_state=True)
        holder.rollback()

    assert state.is_failed()
    assert "lock_timeout=0.5 s" in state.message and "nothing was changed" in state.message
    attempts = task_run_counts(state.state_details.flow_run_id)["upgrade"]
    assert attempts == 1 + LOCK_POLICY["lock_retries"]
    assert (revision_of(engine), checksums(engine), schema(engine)) == before
    assert [r["status"] for r in ledger_rows(engine)] == ["failed"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_lock_released_during_the_retries_lets_the_upgrade_through(
    migration_target, history
) -> None:
    engine = at_head_with_rows(migration_target.engine())
    goal = add_revision(history, "aaaa00000021", ADD_PRIORITY)
    holder = engine.connect()
    holder.execute(text("SELECT count(*) FROM workflows"))
    release = threading.Timer(1.0, holder.rollback)
    release.start()
    state = migrate(
        target="app", policy=fast_policy(lock={**LOCK_POLICY, "lock_retries": 5}), return_state=True
    )
    release.join()
    holder.close()
    assert state.is_completed(), state.message
    assert revision_of(engine) == goal


def test_two_runs_on_one_target_never_migrate_at_once(migration_target, history) -> None:
    engine = at_head_with_rows(migration_target.engine())
    goal = add_revision(history, "aaaa00000022", SLOW)
    states = _concurrently({"first": "app", "second": "app"})

    upgraded = [s for s in states.values() if "upgraded app" in (s.message or "")]
    assert len(upgraded) == 1 and upgraded[0].is_completed()
    (other,) = [s for s in states.values() if s is not upgraded[0]]
    # Started together: the other run is refused while the first holds the lock; one that got
    # going only after the first had finished finds nothing to do. Never a second upgrade.
    refused = other.is_failed() and "another run is migrating target 'app'" in other.message
    late = other.is_completed() and "already at" in other.message
    assert refused or late, other.message
    assert revision_of(engine) == goal
    assert [r["status"] for r in ledger_rows(engine)] == ["succeeded"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_run_on_another_target_is_not_blocked(migration_target, history, tmp_path, monkeypatch):
    # A run on 'app' holds its locks while it waits for approval, for as long as the test
    # likes; a run on 'other' meanwhile must not wait for them (if it did, it would wait out
    # its 30 s and fail).
    engine = at_head_with_rows(migration_target.engine())
    other_url = migration_target.url.set(database=str(tmp_path / "other.db"))
    other_engine = at_head_with_rows(make_engine(other_url, poolclass=NullPool))
    goal = add_revision(history, "aaaa00000023", SLOW)
    app = create_app(Settings(database_url=other_url, health_timeout=2))
    with serve(app) as base_url:
        monkeypatch.setenv("AUTOPR_DB_OTHER_URL", other_url.render_as_string())
        monkeypatch.setenv("AUTOPR_DB_OTHER_HEALTH_URL", f"{base_url}/health")
        monkeypatch.setenv("AUTOPR_DB_OTHER_BACKUP_DIR", str(tmp_path / "other-backups"))
        holding = BackgroundRun(target="app", policy=fast_policy(approval={"mode": "always"}))
        paused = holding.paused()
        other = migrate(
            target="other", policy=fast_policy(lock={"wait_seconds": 30}), return_state=True
        )
        assert other.is_completed(), other.message
        assert revision_of(other_engine) == goal and revision_of(engine) != goal
        resume_flow_run(
            paused.id, run_input={"decision": "approve", "approver": "ops", "reason": "t"}
        )
        assert holding.result().is_completed()
    app.state.engine.dispose()
    assert revision_of(engine) == goal


def _concurrently(runs: dict[str, str]) -> dict[str, object]:
    """Start one migrate run per ``{label: target}`` at the same moment; wait for all."""
    states: dict[str, object] = {}
    start = threading.Barrier(len(runs))

    def run(label: str, target: str) -> None:
        start.wait()
        states[label] = migrate(
            target=target, policy=fast_policy(lock={"wait_seconds": 5}), return_state=True
        )

    threads = [threading.Thread(target=run, args=item) for item in runs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return states
