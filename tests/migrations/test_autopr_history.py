"""AutoPR's revisions rewritten to use the safe operations produce what their texts that ran did.

``as_they_ran/`` holds the earlier texts (as ``.txt``, so no formatter touches a byte of them):
a database that ran those keeps migrating, because each rewritten revision declares their
sha256 equivalent.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import URL, DateTime, Engine, MetaData, make_url, select, text
from sqlalchemy.pool import NullPool

from autopr.database import make_engine
from autopr_migrate.backends import pgtools
from autopr_migrate.history.equivalence import declared_equivalents
from autopr_migrate.ops.backfill import CHECKPOINT_TABLE
from autopr_migrate.ops.runner import CRASH_AFTER_ENV
from tests.support.alembic_run import PROJECT_ROOT, alembic_cli, downgrade, revision_of, upgrade
from tests.support.databases import new_database, schema_only
from tests.support.seed import seed, workflow_statuses

AS_THEY_RAN = Path(__file__).with_name("as_they_ran")
VERSIONS = PROJECT_ROOT / "alembic" / "versions"
BEFORE_REWRITES = "b47a91d3e6f2"
WORKFLOWS = 2500  # the backfill's batches are a thousand: three of them


def _earlier_texts() -> list[Path]:
    return sorted(AS_THEY_RAN.glob("*.py.txt"))


def test_each_rewritten_revision_declares_the_text_that_ran() -> None:
    assert len(_earlier_texts()) == 3
    for earlier in _earlier_texts():
        current = VERSIONS / earlier.name.removesuffix(".txt")
        ran = hashlib.sha256(earlier.read_bytes()).hexdigest()
        assert ran != hashlib.sha256(current.read_bytes()).hexdigest()
        assert ran in declared_equivalents(current), current.name
        assert "from autopr_migrate.ops import safe" in current.read_text()


@pytest.fixture
def second_url(database_url: URL, postgresql_admin_url: URL, tmp_path: Path) -> Iterator[URL]:
    if database_url.get_backend_name() == "sqlite":
        yield make_url(f"sqlite:///{tmp_path}/as_it_ran.db")
        return
    with new_database(postgresql_admin_url) as url:
        yield url


@pytest.fixture
def history_as_it_ran(history: Path) -> Path:
    """A copy of the project's history with the three revisions as they ran; its alembic.ini."""
    for earlier in _earlier_texts():
        shutil.copy(earlier, history / earlier.name.removesuffix(".txt"))
    return history.parents[1] / "alembic.ini"


def _engine(url: URL) -> Engine:
    return make_engine(url, poolclass=NullPool)


def _seeded(url: URL) -> Engine:
    engine = _engine(url)
    upgrade(engine, BEFORE_REWRITES)
    with engine.begin() as connection:
        seed(connection, workflows=WORKFLOWS)
    return engine


def _schema(engine: Engine) -> str | list:
    if engine.dialect.name == "postgresql":
        return schema_only(engine.url)
    with engine.connect() as connection:
        objects = connection.execute(
            text("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        )
        # Batch mode writes a recreated table's constraints in the order of a set: by line.
        return [
            (kind, name, table, sorted(line.strip(" \t,") for line in (sql or "").splitlines()))
            for kind, name, table, sql in objects
        ]


def _data(engine: Engine) -> dict[str, list]:
    """Every table's rows in key order, without the times the seed and the records were
    written at (the two databases were filled a moment apart) and the records' own ids."""
    tables = MetaData()
    tables.reflect(engine)
    data = {}
    with engine.connect() as connection:
        for table in tables.sorted_tables:
            kept = [
                column
                for column in table.columns
                if not isinstance(column.type, DateTime)
                and not (table.name == "workflow_status_changes" and column.name == "id")
            ]
            data[table.name] = [
                tuple(row) for row in connection.execute(select(*kept).order_by(*kept))
            ]
    return data


def _with_history(monkeypatch: pytest.MonkeyPatch, ini: Path | None) -> None:
    if ini is None:
        monkeypatch.delenv("AUTOPR_ALEMBIC_CONFIG", raising=False)
    else:
        monkeypatch.setenv("AUTOPR_ALEMBIC_CONFIG", str(ini))


@pytest.mark.both_dialects
def test_the_rewritten_history_produces_what_the_texts_that_ran_did(
    database_url: URL, second_url: URL, history_as_it_ran: Path, monkeypatch
) -> None:
    rewritten, as_it_ran = _seeded(database_url), _seeded(second_url)
    _with_history(monkeypatch, None)
    upgrade(rewritten, "head")
    _with_history(monkeypatch, history_as_it_ran)
    upgrade(as_it_ran, "head")
    assert revision_of(rewritten) == revision_of(as_it_ran) == "f19c7e25b0a3"
    assert _schema(rewritten) == _schema(as_it_ran)
    assert _data(rewritten) == _data(as_it_ran)
    records = _data(rewritten)["workflow_status_changes"]
    assert sum(1 for record in records if "migration:6a0d3f9b2c48" in record) == WORKFLOWS // 4

    downgrade(as_it_ran, BEFORE_REWRITES)
    _with_history(monkeypatch, None)
    downgrade(rewritten, BEFORE_REWRITES)
    assert _schema(rewritten) == _schema(as_it_ran)
    assert _data(rewritten) == _data(as_it_ran)
    rewritten.dispose()
    as_it_ran.dispose()


def test_the_archive_killed_after_a_batch_finishes_on_the_next_run(
    postgresql_url: URL, monkeypatch
) -> None:
    """The application writes between the batches: the records name exactly the rows the
    migration archived, and the downgrade puts back exactly those still archived."""
    engine = _seeded(postgresql_url)
    before = workflow_statuses(engine)
    monkeypatch.setenv(CRASH_AFTER_ENV, "backfill:batch")
    crashed = alembic_cli("upgrade", "6a0d3f9b2c48", url=postgresql_url)
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    assert revision_of(engine) == "e5c8f2a1d934"
    with engine.connect() as connection:
        done = connection.scalar(text(f"SELECT rows_done FROM {CHECKPOINT_TABLE}"))
    archived_first = {i for i, s in workflow_statuses(engine).items() if before[i] != s}
    assert archived_first == {i for i, s in before.items() if s == "deprecated" and i <= 1000}
    assert done == len(archived_first)

    def first(status: str, *, after_batch: bool) -> int:
        return min(i for i, s in before.items() if s == status and (i > 1000) == after_batch)

    reactivated = first("deprecated", after_batch=False)  # archived, then the app changed it
    spared = first("deprecated", after_batch=True)  # the app changed it before its batch
    newly = first("active", after_batch=True)  # deprecated by the app before its batch
    late = first("active", after_batch=False)  # deprecated by the app behind the batches
    with engine.begin() as connection:
        for workflow, status in (
            (reactivated, "active"),
            (spared, "active"),
            (newly, "deprecated"),
            (late, "deprecated"),
        ):
            connection.execute(
                text("UPDATE workflows SET status = :s WHERE id = :id"),
                {"s": status, "id": workflow},
            )
    monkeypatch.delenv(CRASH_AFTER_ENV)
    finished = alembic_cli("upgrade", "6a0d3f9b2c48", url=postgresql_url)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert revision_of(engine) == "6a0d3f9b2c48"

    archived = (archived_first | {i for i, s in before.items() if s == "deprecated"}) - {spared}
    archived |= {newly}
    assert _marked(engine) == sorted(archived)  # each once, none it did not archive
    after = workflow_statuses(engine)
    assert {i for i in archived if after[i] == "archived"} == archived - {reactivated}
    assert (after[reactivated], after[spared], after[late]) == ("active", "active", "deprecated")
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT to_regclass(:t)"), {"t": CHECKPOINT_TABLE}) is None

    downgrade(engine, "e5c8f2a1d934")
    back = workflow_statuses(engine)
    assert {i for i in archived - {reactivated} if back[i] == "deprecated"} == archived - {
        reactivated
    }
    assert (back[reactivated], back[spared], back[late]) == ("active", "active", "deprecated")
    assert _marked(engine) == []
    engine.dispose()


def _marked(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT workflow_id FROM workflow_status_changes "
                    "WHERE changed_by = 'migration:6a0d3f9b2c48' ORDER BY workflow_id"
                )
            ).scalars()
        )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_rendered_sql_applied_with_psql_does_what_the_online_upgrade_does(
    database_url: URL, second_url: URL, tmp_path: Path
) -> None:
    """Offline, the backfill renders its records and its update whole, in the revision's
    transaction: a DBA applying ``--sql`` output gets the same rows."""
    online, offline = _seeded(database_url), _seeded(second_url)
    upgrade(online, "head")
    rendered = alembic_cli("upgrade", f"{BEFORE_REWRITES}:head", "--sql", url=second_url)
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    assert "-- safe.backfill (whole)" in rendered.stdout
    script = tmp_path / "upgrade.sql"
    script.write_text(rendered.stdout)
    pgtools.run(
        [pgtools.binary("psql"), "-v", "ON_ERROR_STOP=1", "-q", "-f", str(script)], url=second_url
    )
    assert _schema(online) == _schema(offline)
    assert _data(online) == _data(offline)
    online.dispose()
    offline.dispose()
