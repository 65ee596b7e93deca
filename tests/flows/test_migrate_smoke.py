from __future__ import annotations

from flows.migrate import migrate
from tests.flows.conftest import fast_policy
from tests.support.alembic_run import revision_of, upgrade
from tests.support.revisions import ADD_PRIORITY, BREAK_APPLICATION, FAILING_DOWNGRADE, add_revision


def test_success(migration_target, history) -> None:
    engine = migration_target.engine()
    upgrade(engine, "head")
    rev = add_revision(history, "aaaa00000001", ADD_PRIORITY)
    state = migrate(target="app", revision="head", policy=fast_policy(), return_state=True)
    print(state, state.message)
    assert state.is_completed(), state.message
    assert revision_of(engine) == rev


def test_probe_fails(migration_target, history) -> None:
    engine = migration_target.engine()
    upgrade(engine, "head")
    start = revision_of(engine)
    add_revision(history, "aaaa00000002", BREAK_APPLICATION)
    state = migrate(target="app", revision="head", policy=fast_policy(), return_state=True)
    print(state, state.message)
    assert state.is_failed()
    assert revision_of(engine) == start


def test_downgrade_fails(migration_target, history) -> None:
    engine = migration_target.engine()
    upgrade(engine, "head")
    start = revision_of(engine)
    add_revision(history, "aaaa00000003", FAILING_DOWNGRADE)
    state = migrate(target="app", revision="head", policy=fast_policy(), return_state=True)
    print(state, state.message)
    assert state.is_failed()
    assert revision_of(engine) == start
