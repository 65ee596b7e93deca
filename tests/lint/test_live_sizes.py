"""Against a real PostgreSQL table: the same change is riskier on a big table than an empty one."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from autopr.database import make_engine
from autopr_migrate.analysis.analyzer import analyze
from autopr_migrate.analysis.catalog import column_facts, table_stats
from autopr_migrate.analysis.lint import lint_sql
from tests.support.alembic_run import upgrade
from tests.support.databases import create_database, drop_database

ROWS = 1_000_000


@pytest.fixture(scope="module")
def engine(postgresql_admin_url):
    url = create_database(postgresql_admin_url)
    engine = make_engine(url, poolclass=NullPool)
    upgrade(engine, "head")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO workflows (id, name, version) VALUES (1, 'w', 1)"))
        connection.execute(
            text(
                "INSERT INTO workflow_executions (workflow_id, status) "
                f"SELECT 1, 'done' FROM generate_series(1, {ROWS})"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE")
    yield engine
    engine.dispose()
    drop_database(postgresql_admin_url, url.database)


def _lint(engine, sql: str):
    names = {t for s in analyze(sql).statements for t in s.tables}
    with engine.connect() as connection:
        sizes, columns = table_stats(connection, names), column_facts(connection, names)
    return lint_sql(sql, sizes=sizes, columns=columns, flow_sets_timeouts=True)


@pytest.mark.parametrize(
    ("change", "big_level"),
    [
        ("CREATE INDEX ix_exec_status ON {table} (id)", "high"),
        ("ALTER TABLE {table} ALTER COLUMN id TYPE bigint", "critical"),
        ("ALTER TABLE {table} ALTER COLUMN name SET NOT NULL", "high"),
    ],
)
def test_a_big_table_raises_the_level_and_names_its_size(engine, change, big_level) -> None:
    with engine.begin() as connection:
        for table, column in (("workflow_executions", "name"), ("repositories", "name2")):
            connection.execute(text(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} text"))
    big = _lint(engine, change.format(table="workflow_executions"))
    assert big.level == big_level
    assert any("~1,000,000 rows" in finding.message for finding in big.findings)
    small = _lint(engine, change.format(table="repositories").replace(" name ", " name2 "))
    assert small.level == "low"


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE workflow_executions ALTER COLUMN status TYPE text",
        "ALTER TABLE workflow_executions ALTER COLUMN status TYPE varchar(50)",
        "ALTER TABLE workflow_executions ALTER COLUMN status TYPE varchar(20)",
        "ALTER TABLE workflow_executions ALTER COLUMN status SET NOT NULL",
    ],
)
def test_what_postgresql_does_without_touching_rows_is_low_on_a_big_table(engine, change):
    report = _lint(engine, change)
    assert report.level == "low", [(f.rule, f.message) for f in report.findings]
    assert not [f for f in report.findings if f.rule in ("table-rewrite", "data-loss")]


def test_narrowing_a_column_is_data_loss(engine) -> None:
    report = _lint(engine, "ALTER TABLE workflow_executions ALTER COLUMN status TYPE varchar(5)")
    narrowing = [f for f in report.findings if f.rule == "data-loss"]
    assert narrowing and "from varchar(20) to varchar(5)" in narrowing[0].message
    widening = _lint(engine, "ALTER TABLE workflow_executions ALTER COLUMN status TYPE varchar(50)")
    assert not [f for f in widening.findings if f.rule == "data-loss"]
