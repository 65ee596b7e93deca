"""``autopr-migrate`` against real databases."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import URL
from sqlalchemy.pool import NullPool

from autopr.database import make_engine
from autopr_migrate.cli.app import main
from autopr_migrate.errors import (
    ConfigurationError,
    ExitCode,
    LockUnavailable,
    MigrationError,
    PreflightRefused,
)
from autopr_migrate.store import ledger
from tests.flows.helpers import ledger_rows
from tests.support.alembic_run import upgrade
from tests.support.history import heads, pending

HISTORY = [info.revision for info in pending(None)]


@pytest.fixture
def database(database_url: URL, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", database_url.render_as_string(hide_password=False))
    engine = make_engine(database_url, poolclass=NullPool)
    yield engine
    engine.dispose()


def test_status_lists_the_revisions_still_to_run(database, capsys) -> None:
    upgrade(database, HISTORY[2])
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"current:  {HISTORY[2]}" in out
    assert f"head:     {heads()[0]}" in out
    assert f"pending:  {len(HISTORY) - 3}" in out
    assert all(revision in out for revision in HISTORY[3:])


def test_status_refuses_a_malformed_url(monkeypatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:Hidden-pw@db:nope/autopr")
    assert main(["status"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "DATABASE_URL is not a valid database URL" in err
    assert "Hidden-pw" not in err


def test_status_reports_an_unreachable_database(monkeypatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:Hidden-pw@127.0.0.1:1/autopr")
    assert main(["status"]) == ExitCode.UNAVAILABLE
    err = capsys.readouterr().err
    assert "cannot connect to the database in target 'default'" in err
    assert "Hidden-pw" not in err


def test_status_of_an_unknown_target_says_how_to_configure_it(capsys) -> None:
    assert main(["status", "--target", "staging"]) == ExitCode.USAGE
    assert "AUTOPR_DB_STAGING_URL" in capsys.readouterr().err


def _crashed_run(engine, *, at: str, started_from: str) -> None:
    upgrade(engine, at)
    with engine.connect() as connection:
        ledger.start(
            connection,
            target="default",
            from_revision=started_from,
            to_revision=HISTORY[-1],
            flow_run_name="crashed-run",
        )


def test_resolve_marks_a_crashed_run_rolled_back_when_the_database_is_back(
    database, capsys
) -> None:
    _crashed_run(database, at=HISTORY[3], started_from=HISTORY[3])
    assert main(["resolve"]) == ExitCode.NOTHING_DONE  # no choice, and no terminal to ask
    assert "crashed-run" in capsys.readouterr().out
    assert main(["resolve", "--mark", "rolled-back", "--yes"]) == 0
    assert [row["status"] for row in ledger_rows(database)] == ["rolled_back"]
    assert main(["resolve"]) == 0
    assert "nothing to resolve" in capsys.readouterr().out


def test_resolve_refuses_rolled_back_while_the_database_is_elsewhere(database, capsys) -> None:
    _crashed_run(database, at=HISTORY[4], started_from=HISTORY[3])
    assert main(["resolve", "--mark", "rolled-back", "--yes"]) == ExitCode.REFUSED
    assert "restore its backup first" in capsys.readouterr().err
    assert [row["status"] for row in ledger_rows(database)] == ["running"]


def test_resolve_never_marks_an_unfinished_restore_rolled_back(database, capsys) -> None:
    upgrade(database, HISTORY[-1])
    with database.connect() as connection:
        ledger.start(
            connection,
            target="default",
            operation="restore",
            from_revision=HISTORY[-1],
            to_revision=HISTORY[-1],
        )
    assert main(["resolve", "--mark", "rolled-back", "--yes"]) == ExitCode.REFUSED
    assert "may be half restored" in capsys.readouterr().err
    assert [row["status"] for row in ledger_rows(database)] == ["running"]


def test_status_in_json_for_machines(database, capsys) -> None:
    upgrade(database, HISTORY[2])
    assert main(["status", "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["current"] == HISTORY[2] and found["heads"] == heads()
    assert [p["revision"] for p in found["pending"]] == HISTORY[3:]


def test_every_exit_code_means_one_thing_and_none_collides_with_a_risk_level(capsys) -> None:
    codes = [code.value for code in ExitCode]
    assert len(codes) == len(set(codes))
    assert [c for c in codes if c < 64] == [0, 1, 2, 3]  # lint's levels, and nothing else
    assert {
        error.exit_code
        for error in (
            ConfigurationError("x"),
            PreflightRefused("x"),
            LockUnavailable("x"),
            MigrationError("x"),
        )
    } <= set(codes) - {1, 2, 3}
    assert main(["--help"]) == 0 and "CI gates" in capsys.readouterr().out
    assert main(["status", "--no-such-option"]) == ExitCode.USAGE
    assert capsys.readouterr().err.count("\n") == 1
