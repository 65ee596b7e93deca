"""Bad input and unsafe states: a clear message, a Failed run, and nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from autopr_migrate.flows.migrate import migrate
from autopr_migrate.store import ledger
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums, schema
from tests.support.alembic_run import revision_of
from tests.support.revisions import ADD_PRIORITY, add_revision


def _run(revision: str = "head", target: str = "app", **policy) -> object:
    return migrate(
        target=target, revision=revision, policy=fast_policy(**policy), return_state=True
    )


@pytest.fixture
def unchanged(migration_target, history):
    """A seeded database one revision behind a good head; asserts afterwards it is untouched."""
    engine = at_head_with_rows(migration_target.engine())
    add_revision(history, "aaaa00000010", ADD_PRIORITY)
    before = (revision_of(engine), checksums(engine), schema(engine))
    yield engine
    assert (revision_of(engine), checksums(engine), schema(engine)) == before


@pytest.mark.parametrize(
    ("revision", "expected"),
    [
        ("ffffffffffff", "is not in the history"),
        ("3c1f0e8a2b71", "use the rollback flow"),
        ("base", "use the rollback flow"),
        ("-1", "use the rollback flow"),
        ("+5", "beyond the head"),
    ],
    ids=["unknown", "older", "base", "minus-one", "too-far"],
)
def test_bad_revisions_are_refused(unchanged, revision: str, expected: str) -> None:
    state = _run(revision)
    assert state.is_failed()
    assert expected in state.message


def test_unknown_target_is_refused(unchanged) -> None:
    with pytest.raises(Exception, match="unknown target 'nope'"):
        migrate(target="nope", policy=fast_policy())


def test_malformed_url_is_refused_with_the_password_masked(unchanged, monkeypatch) -> None:
    monkeypatch.setenv("AUTOPR_DB_APP_URL", "postgresql://app:Very-Secret@db:port/autopr")
    state = _run()
    assert state.is_failed()
    assert "not a valid database URL" in state.message
    assert "Very-Secret" not in state.message


def test_unreachable_database_is_refused(unchanged, monkeypatch) -> None:
    monkeypatch.setenv("AUTOPR_DB_APP_URL", "postgresql://app:Very-Secret@127.0.0.1:1/autopr")
    state = _run()
    assert state.is_failed()
    assert "cannot connect to the database in target 'app'" in state.message
    assert "Very-Secret" not in state.message


def test_unwritable_backup_directory_is_refused(unchanged, monkeypatch, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("AUTOPR_DB_APP_BACKUP_DIR", str(blocker / "backups"))
    state = _run()
    assert state.is_failed()
    assert "backup directory" in state.message
    assert f"lies under {blocker}, which is a file" in state.message


def test_database_at_a_revision_the_code_does_not_know_is_refused(migration_target) -> None:
    engine = at_head_with_rows(migration_target.engine())
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'c0ffee000000'"))
    state = _run()
    assert state.is_failed()
    assert "c0ffee000000, which this code does not know" in state.message
    assert revision_of(engine) == "c0ffee000000"


def test_unfinished_run_in_the_ledger_is_refused(unchanged) -> None:
    with unchanged.connect() as connection:
        ledger.start(connection, target="app", from_revision="x", to_revision="y")
    state = _run()
    assert state.is_failed()
    assert "never finished" in state.message and "autopr-migrate resolve" in state.message


def test_sick_application_is_not_migrated(migration_target, history) -> None:
    engine = at_head_with_rows(migration_target.engine())
    add_revision(history, "aaaa00000011", ADD_PRIORITY)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE api_tokens"))
    state = _run()
    assert state.is_failed()
    assert "not healthy before the migration (missing table api_tokens)" in state.message
    assert revision_of(engine) != "aaaa00000011"


def test_multiple_heads_are_refused_with_alembics_advice(unchanged, history) -> None:
    add_revision(history, "aaaa00000012", ADD_PRIORITY, down="6a0d3f9b2c48")
    state = _run()
    assert state.is_failed()
    assert "alembic merge heads" in state.message


def test_empty_database_without_an_application_may_be_migrated(
    migration_target, monkeypatch
) -> None:
    monkeypatch.setenv("AUTOPR_DB_APP_HEALTH_URL", "http://127.0.0.1:1/health")
    engine = migration_target.engine()
    state = _run()
    assert state.is_completed(), state.message
    assert revision_of(engine) is not None


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_long_running_transaction_is_refused(unchanged) -> None:
    import time

    with unchanged.connect() as blocker:
        blocker.execute(text("SELECT count(*) FROM workflows"))
        time.sleep(1.2)
        state = _run(preflight={"max_transaction_seconds": 1, "long_transaction_seconds": 0.5})
        blocker.rollback()
    assert state.is_failed()
    assert "open longer than 1 s" in state.message
