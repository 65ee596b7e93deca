"""Plain ``alembic`` keeps working on both databases, with DATABASE_URL as the only setting."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess

import pytest
from sqlalchemy import URL, make_url
from sqlalchemy.pool import NullPool

from autopr.database import make_engine
from tests.support.alembic_run import alembic_cli, revision_of, upgrade
from tests.support.databases import table_checksums
from tests.support.history import heads, pending
from tests.support.seed import seed

pytestmark = pytest.mark.both_dialects  # their behaviour differs by dialect

HISTORY = [info.revision for info in pending(None)]
HEAD = heads()[0]
PASSWORD = "Sup3r-Secret-pw"


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_upgrade_current_downgrade_history_and_sql(database_url: URL) -> None:
    _ok(alembic_cli("upgrade", "head", url=database_url))
    assert f"{HEAD} (head)" in _ok(alembic_cli("current", url=database_url))
    history = _ok(alembic_cli("history", url=database_url))
    assert all(revision in history for revision in HISTORY)
    _ok(alembic_cli("downgrade", "-1", url=database_url))
    assert HISTORY[-2] in _ok(alembic_cli("current", url=database_url))
    _ok(alembic_cli("downgrade", "base", url=database_url))
    assert _ok(alembic_cli("current", url=database_url)).strip() == ""
    sql = _ok(alembic_cli("upgrade", "head", "--sql", url=database_url))
    assert "CREATE TABLE workflows" in sql
    engine = make_engine(database_url, poolclass=NullPool)
    assert revision_of(engine) is None  # --sql renders; it never touches the database
    engine.dispose()


def test_offline_postgresql_sql_builds_the_schema_the_models_describe(postgresql_url: URL) -> None:
    sql = _ok(alembic_cli("upgrade", "head", "--sql", url=postgresql_url))
    assert "CREATE INDEX CONCURRENTLY ix_workflows_status ON workflows (status)" in sql
    psql = shutil.which("psql")
    assert psql, "psql (postgresql-client) is needed to apply rendered SQL"
    applied = subprocess.run(
        [
            psql,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            postgresql_url.database,
            "-h",
            postgresql_url.host or "127.0.0.1",
            "-p",
            str(postgresql_url.port or 5432),
            "-U",
            postgresql_url.username or "postgres",
        ],
        input=sql,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert applied.returncode == 0, applied.stderr
    assert f"{HEAD} (head)" in _ok(alembic_cli("current", url=postgresql_url))
    assert "No new upgrade operations detected" in _ok(alembic_cli("check", url=postgresql_url))


def test_offline_sqlite_sql_builds_the_schema_the_models_describe(sqlite_url: URL) -> None:
    sql = _ok(alembic_cli("upgrade", "head", "--sql", url=sqlite_url))
    assert "CREATE INDEX ix_workflows_status ON workflows (status)" in sql
    assert "CONCURRENTLY" not in sql
    with sqlite3.connect(sqlite_url.database) as connection:
        connection.executescript(sql)
    assert f"{HEAD} (head)" in _ok(alembic_cli("current", url=sqlite_url))
    assert "No new upgrade operations detected" in _ok(alembic_cli("check", url=sqlite_url))


def test_offline_sql_renders_for_a_dialect_without_any_database() -> None:
    for dialect, marker in (("postgresql", "CONCURRENTLY"), ("sqlite", "_alembic_tmp_workflows")):
        sql = _ok(alembic_cli("-x", f"dialect={dialect}", "upgrade", "head", "--sql", url=None))
        assert marker in sql
        down = _ok(
            alembic_cli("-x", f"dialect={dialect}", "downgrade", "head:base", "--sql", url=None)
        )
        assert "DROP TABLE workflows" in down


def _with_password(url: URL) -> str:
    return url.set(password=PASSWORD).render_as_string(hide_password=False)


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (lambda u: u.replace("postgresql://", "postgres://"), "unknown database driver"),
        (lambda u: u.replace(":5432/", ":54x2/"), "not a valid database URL"),
        (lambda u: u.replace(":5432/", ":1/"), "cannot connect"),
        (lambda u: u.rsplit("/", 1)[0] + "/no_such_database", "does not exist"),
    ],
    ids=["wrong-scheme", "bad-port", "unreachable", "unknown-database"],
)
@pytest.mark.parametrize("command", [["upgrade", "head"], ["current"], ["downgrade", "-1"]])
def test_bad_database_url_fails_in_one_line_and_changes_nothing(
    postgresql_url: URL, broken, expected: str, command: list[str]
) -> None:
    engine = make_engine(postgresql_url, poolclass=NullPool)
    upgrade(engine, HISTORY[3])
    with engine.begin() as connection:
        seed(connection)
    with engine.connect() as connection:
        before = table_checksums(connection)

    result = alembic_cli(*command, url=broken(_with_password(postgresql_url)))

    assert result.returncode != 0
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert expected in lines[0] and "DATABASE_URL" in lines[0]
    assert PASSWORD not in result.stderr + result.stdout
    with engine.connect() as connection:
        assert table_checksums(connection) == before
    engine.dispose()


def test_missing_database_url_says_how_to_set_it() -> None:
    result = alembic_cli("current", url=None)
    assert result.returncode != 0
    assert "FAILED: DATABASE_URL is not set" in result.stdout


def test_sqlite_url_to_a_missing_directory_fails_clearly(tmp_path) -> None:
    url = make_url(f"sqlite:///{tmp_path}/missing/dir/autopr.db")
    result = alembic_cli("upgrade", "head", url=url)
    assert result.returncode != 0
    assert "FAILED: cannot connect to the database in DATABASE_URL" in result.stdout
    assert not (tmp_path / "missing").exists()
