from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import URL, Engine, inspect
from sqlalchemy.pool import NullPool

from autopr.database import make_engine
from flows.alembic_ops import heads, pending
from tests.support.alembic_run import downgrade, revision_of, upgrade
from tests.support.databases import table_checksums
from tests.support.seed import seed

HISTORY = [revision for revision, _ in pending(None)]


@pytest.fixture
def engine(database_url: URL) -> Iterator[Engine]:
    engine = make_engine(database_url, poolclass=NullPool)
    yield engine
    engine.dispose()


def test_history_has_at_least_six_revisions_and_one_head() -> None:
    assert len(HISTORY) >= 6
    assert heads() == [HISTORY[-1]]


def test_base_to_head_to_base_to_head_one_revision_at_a_time(engine: Engine) -> None:
    for expected in HISTORY:
        upgrade(engine, "+1")
        assert revision_of(engine) == expected
    for expected in [*reversed(HISTORY[:-1]), None]:
        downgrade(engine, "-1")
        assert revision_of(engine) == expected
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    for expected in HISTORY:
        upgrade(engine, "+1")
        assert revision_of(engine) == expected


def test_table_rebuilds_keep_every_row_of_the_tables_that_reference_them(engine: Engine) -> None:
    # SQLite rebuilds workflows and pull_requests; their ON DELETE CASCADE / SET NULL children
    # must come through untouched, on the way up and on the way down.
    upgrade(engine, HISTORY[2])
    with engine.begin() as connection:
        seed(connection)
    before = _checksums(engine)
    upgrade(engine, "head")
    at_head = _checksums(engine)
    downgrade(engine, HISTORY[1])
    after = _checksums(engine)
    for table in ("users", "repositories", "pull_requests", "workflow_executions"):
        assert at_head[table] == before[table], table
        assert after[table] == before[table], table
    assert after["workflows"][0] == before["workflows"][0]


def _checksums(engine: Engine) -> dict:
    with engine.connect() as connection:
        return table_checksums(connection, exclude=frozenset({"alembic_version"}))
