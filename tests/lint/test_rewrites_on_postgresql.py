"""What lint says a statement does to a table is what PostgreSQL 15 does to it.

A rewrite gives the table a new ``relfilenode``; a scan shows in the transaction's own
``seq_scan`` count. Every verdict here is read from the live catalog, as the migrate flow does.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, text

from autopr_migrate.analysis.catalog import column_facts, session_is_utc, table_stats
from autopr_migrate.analysis.lint import lint_sql

TYPE_CHANGES = [
    ("varchar(20)", "varchar(50)"),
    ("varchar(20)", "varchar(20)"),
    ("varchar(50)", "varchar(20)"),
    ("varchar(20)", "varchar"),
    ("varchar(20)", "text"),
    ("text", "varchar"),
    ("text", "varchar(30)"),
    ("char(5)", "char(10)"),
    ("numeric(10,2)", "numeric(12,2)"),
    ("numeric(10,2)", "numeric"),
    ("numeric(10,2)", "numeric(12,3)"),
    ("numeric(10,2)", "numeric(8,2)"),
    ("numeric", "numeric(10,2)"),
    ("integer", "bigint"),
    ("integer", "int4"),
    ("bigint", "integer"),
    ("timestamp(3)", "timestamp(6)"),
    ("timestamp(6)", "timestamp"),
    ("timestamp(6)", "timestamp(3)"),
    ("timestamp", "timestamptz"),
    ("timestamptz", "timestamp(3)"),
    ("interval(2)", "interval(5)"),
    ("varbit(8)", "varbit(16)"),
    ("cidr", "inet"),
    ("integer[]", "bigint[]"),
    ("text[]", "varchar[]"),
    ("varchar(10)[]", "varchar(20)[]"),
    ("interval(3)", "interval day"),
    ("double precision", "numeric"),
]


@pytest.fixture
def connection(postgresql_url) -> Connection:
    from sqlalchemy.pool import NullPool

    from autopr.database import make_engine

    engine = make_engine(postgresql_url, poolclass=NullPool)
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def _lint(connection: Connection, sql: str):
    sizes, columns = table_stats(connection, {"probe"}), column_facts(connection, {"probe"})
    return lint_sql(
        sql,
        sizes=sizes,
        columns=columns,
        flow_sets_timeouts=True,
        squawk=False,
        utc_session=session_is_utc(connection),
    )


def _filenode(connection: Connection) -> int:
    return connection.scalar(text("SELECT pg_relation_filenode('probe')"))


@pytest.mark.parametrize(("old", "new"), TYPE_CHANGES, ids=[f"{o}->{n}" for o, n in TYPE_CHANGES])
@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_a_type_change_is_a_rewrite_exactly_when_postgresql_rewrites(connection, old, new, zone):
    connection.exec_driver_sql(f"SET TimeZone = '{zone}'")
    connection.exec_driver_sql(f"CREATE TABLE probe (id int PRIMARY KEY, c {old})")
    connection.exec_driver_sql("INSERT INTO probe (id) SELECT generate_series(1, 200)")
    connection.commit()
    statement = f"ALTER TABLE probe ALTER COLUMN c TYPE {new}"
    report = _lint(connection, statement)
    predicted = any(finding.rule == "table-rewrite" for finding in report.findings)
    before = _filenode(connection)
    connection.exec_driver_sql(statement)
    connection.commit()
    assert predicted == (_filenode(connection) != before), [f.message for f in report.findings]


@pytest.mark.parametrize(
    ("column", "setup", "scans"),
    [
        ("c text NOT NULL", "", False),
        ("c text", "", True),
        ("c text", "ALTER TABLE probe ADD CONSTRAINT c_nn CHECK (c IS NOT NULL)", False),
        ("c text", "ALTER TABLE probe ADD CONSTRAINT c_nn CHECK (c IS NOT NULL) NOT VALID", True),
    ],
)
def test_set_not_null_is_a_scan_exactly_when_postgresql_scans(connection, column, setup, scans):
    connection.exec_driver_sql(f"CREATE TABLE probe (id int PRIMARY KEY, {column})")
    connection.exec_driver_sql("INSERT INTO probe SELECT g, 'x' FROM generate_series(1, 200) g")
    if setup:
        connection.exec_driver_sql(setup)
    connection.commit()
    statement = "ALTER TABLE probe ALTER COLUMN c SET NOT NULL"
    report = _lint(connection, statement)
    predicted = any(f.rule == "scan-under-access-exclusive" for f in report.findings)
    count = text("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'probe'")
    before = connection.scalar(count)
    connection.exec_driver_sql(statement)
    scanned = connection.scalar(count) > before
    connection.rollback()
    assert predicted == scans == scanned
