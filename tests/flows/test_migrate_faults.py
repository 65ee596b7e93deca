"""Real faults during a run: a killed session, a half-built index, objects only a restore fixes."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import inspect, text

from autopr_migrate.backends.migration_lock import MIGRATION_LOCK_KEY
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums, ledger_rows, schema
from tests.support.alembic_run import alembic_cli, revision_of
from tests.support.paused import migrate_approving
from tests.support.revisions import (
    BREAK_APPLICATION,
    CONCURRENT_INDEX,
    NEW_TABLE_THEN_STUCK,
    add_revision,
)

pytestmark = pytest.mark.both_dialects  # their behaviour differs by dialect


def test_restore_removes_a_new_table_that_references_an_old_one(migration_target, history):
    engine = at_head_with_rows(migration_target.engine())
    start, before = revision_of(engine), checksums(engine)
    add_revision(history, "aaaa00000060", NEW_TABLE_THEN_STUCK)

    state = migrate_approving(target="app", policy=fast_policy())

    assert state.is_failed() and "restored backup" in state.message, state.message
    assert revision_of(engine) == start
    assert checksums(engine) == before
    assert "labels" not in inspect(engine).get_table_names()
    assert [r["status"] for r in ledger_rows(engine)] == ["restored"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_killed_migrating_session_is_replaced_and_the_downgrade_runs_locked(
    migration_target, history
) -> None:
    engine = at_head_with_rows(migration_target.engine())
    start, before = revision_of(engine), checksums(engine)
    add_revision(history, "aaaa00000061", BREAK_APPLICATION)
    killed: list[int] = []

    def kill_the_lock_holder() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed and not finished.is_set():
            with engine.connect() as admin:
                pid = admin.scalar(
                    text(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                        "((classid::bigint << 32) | objid::bigint) = :key AND database = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database())"
                    ),
                    {"key": MIGRATION_LOCK_KEY},
                )
                probing = admin.scalar(
                    text(
                        "SELECT count(*) FROM information_schema.columns WHERE table_name = "
                        "'workflows' AND column_name = 'details'"
                    )
                )
                if pid and probing:  # the upgrade is done: the flow is probing now
                    admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                    killed.append(pid)
            time.sleep(0.05)

    finished = threading.Event()
    killer = threading.Thread(target=kill_the_lock_holder)
    killer.start()
    state = migrate_approving(target="app", policy=fast_policy())
    finished.set()
    killer.join()

    assert killed, "the migrating session was never seen"
    assert state.is_failed() and "rolled back: downgraded to" in state.message, state.message
    assert revision_of(engine) == start and checksums(engine) == before
    assert [r["status"] for r in ledger_rows(engine)] == ["rolled_back"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_failed_concurrent_index_build_leaves_no_invalid_index(migration_target, history):
    engine = at_head_with_rows(migration_target.engine())
    start, before = revision_of(engine), schema(engine)
    add_revision(history, "aaaa00000062", CONCURRENT_INDEX)

    state = migrate_approving(target="app", policy=fast_policy())

    assert state.is_failed()
    assert "dropped the INVALID index(es) it left: ix_workflows_name_created" in state.message
    assert "nothing was changed" in state.message
    with engine.connect() as connection:
        assert not connection.scalar(text("SELECT count(*) FROM pg_index WHERE NOT indisvalid"))
    assert revision_of(engine) == start and schema(engine) == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_plain_alembic_waits_for_no_one_while_a_flow_holds_the_sqlite_lock(
    migration_target, history
) -> None:
    from autopr_migrate.backends.sqlite import BACKEND
    from autopr_migrate.targets.targets import resolve_target

    engine = at_head_with_rows(migration_target.engine())
    add_revision(history, "aaaa00000063", BREAK_APPLICATION)
    target = resolve_target("app")
    with (
        engine.connect() as connection,
        BACKEND.database_lock(connection, target, wait_seconds=1),
    ):
        result = alembic_cli("upgrade", "head", url=migration_target.url)
    assert result.returncode != 0
    assert "another migration holds this database's migration lock" in result.stdout
    assert revision_of(engine) != "aaaa00000063"
