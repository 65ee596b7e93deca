"""The data migration deprecated -> archived, and a downgrade that restores exactly its rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import URL, Engine, text
from sqlalchemy.pool import NullPool

from autopr.database import make_engine
from tests.support.alembic_run import downgrade, upgrade
from tests.support.databases import table_checksums
from tests.support.seed import seed, workflow_statuses

pytestmark = pytest.mark.both_dialects  # their behaviour differs by dialect

ARCHIVE = "6a0d3f9b2c48"
BEFORE_ARCHIVE = "e5c8f2a1d934"


@pytest.fixture
def engine(database_url: URL) -> Iterator[Engine]:
    engine = make_engine(database_url, poolclass=NullPool)
    upgrade(engine, BEFORE_ARCHIVE)
    with engine.begin() as connection:
        seed(connection, workflows=40)
    yield engine
    engine.dispose()


def _checksums(engine: Engine) -> dict:
    with engine.connect() as connection:
        return table_checksums(connection, exclude=frozenset({"alembic_version"}))


def test_upgrade_archives_every_deprecated_workflow_and_nothing_else(engine: Engine) -> None:
    before = workflow_statuses(engine)
    upgrade(engine, ARCHIVE)
    after = workflow_statuses(engine)
    deprecated = {i for i, status in before.items() if status == "deprecated"}
    assert deprecated
    assert "deprecated" not in after.values()
    assert {i for i in deprecated if after[i] == "archived"} == deprecated
    assert {i: s for i, s in after.items() if i not in deprecated} == {
        i: s for i, s in before.items() if i not in deprecated
    }


def test_round_trip_restores_every_table_exactly(engine: Engine) -> None:
    before = _checksums(engine)
    upgrade(engine, ARCHIVE)
    assert _checksums(engine)["workflows"] != before["workflows"]
    downgrade(engine, BEFORE_ARCHIVE)
    assert _checksums(engine) == before


def test_downgrade_leaves_workflows_the_application_changed_since(engine: Engine) -> None:
    before = workflow_statuses(engine)
    already_archived = {i for i, s in before.items() if s == "archived"}
    upgrade(engine, ARCHIVE)
    migrated = sorted(i for i, s in before.items() if s == "deprecated")
    reactivated, still_archived = migrated[0], migrated[1:]
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE workflows SET status = 'active' WHERE id = :id"), {"id": reactivated}
        )
    downgrade(engine, BEFORE_ARCHIVE)
    after = workflow_statuses(engine)
    assert after[reactivated] == "active"
    assert all(after[i] == "deprecated" for i in still_archived)
    assert all(after[i] == "archived" for i in already_archived)
    with engine.connect() as connection:
        leftover = connection.scalar(
            text("SELECT count(*) FROM workflow_status_changes WHERE changed_by LIKE 'migration:%'")
        )
    assert leftover == 0
