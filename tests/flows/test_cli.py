"""``autopr-migrate status`` against real databases."""

from __future__ import annotations

import pytest
from sqlalchemy import URL
from sqlalchemy.pool import NullPool

from autopr.database import make_engine
from flows.alembic_ops import heads, pending
from flows.cli import main
from tests.support.alembic_run import upgrade

HISTORY = [info.revision for info in pending(None)]


def test_status_lists_the_revisions_still_to_run(
    database_url: URL, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(database_url, poolclass=NullPool)
    upgrade(engine, HISTORY[2])
    engine.dispose()
    monkeypatch.setenv("DATABASE_URL", database_url.render_as_string(hide_password=False))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"current:  {HISTORY[2]}" in out
    assert f"head:     {heads()[0]}" in out
    assert f"pending:  {len(HISTORY) - 3}" in out
    assert all(revision in out for revision in HISTORY[3:])


def test_status_refuses_a_malformed_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:Hidden-pw@db:nope/autopr")
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "DATABASE_URL is not a valid database URL" in err
    assert "Hidden-pw" not in err


def test_status_reports_an_unreachable_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:Hidden-pw@127.0.0.1:1/autopr")
    assert main(["status"]) == 3
    err = capsys.readouterr().err
    assert "cannot connect to the database in DATABASE_URL" in err
    assert "Hidden-pw" not in err
