"""``autopr-migrate fleet census|plan``: the fleet flow's census and plan, from a terminal."""

from __future__ import annotations

import json
from contextlib import ExitStack

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from autopr.config import Settings
from autopr.health import create_app
from autopr_migrate.cli.app import main
from autopr_migrate.errors import ExitCode
from tests.flows.helpers import at_head_with_rows, checksums
from tests.support.revisions import ADD_PRIORITY, add_revision
from tests.support.servers import serve


def _members(tmp_path, monkeypatch, names, stack):
    engines = {}
    for name in names:
        url = f"sqlite:///{tmp_path}/{name}.db"
        engines[name] = at_head_with_rows(create_engine(url, poolclass=NullPool))
        app = create_app(Settings(database_url=make_url(url), health_timeout=2))
        base = stack.enter_context(serve(app))
        prefix = f"AUTOPR_DB_{name.upper().replace('-', '_')}_"
        monkeypatch.setenv(f"{prefix}URL", url)
        monkeypatch.setenv(f"{prefix}HEALTH_URL", f"{base}/health")
        monkeypatch.setenv(f"{prefix}BACKUP_DIR", str(tmp_path / "backups" / name))
    return engines


def test_the_census_leaves_out_a_drifted_member_and_changes_nothing(
    history, tmp_path, monkeypatch, capsys
):
    with ExitStack() as stack:
        engines = _members(tmp_path, monkeypatch, ["tenant-a", "tenant-b", "tenant-c"], stack)
        with engines["tenant-b"].begin() as connection:
            connection.execute(text("ALTER TABLE workflows ADD COLUMN by_hand INTEGER"))
        before = {name: checksums(engine) for name, engine in engines.items()}
        code = main(["fleet", "census", "tenant-*", "--format", "json"])
        rows = {row["target"]: row for row in json.loads(capsys.readouterr().out)}
        assert code == ExitCode.CHECK_FAILED
        assert rows["tenant-b"]["left out"].startswith("drifted: its schema differs from the 2")
        assert rows["tenant-a"]["left out"] == rows["tenant-c"]["left out"] == ""
        assert {name: checksums(engine) for name, engine in engines.items()} == before

        add_revision(history, "ffff00000011", ADD_PRIORITY)
        assert main(["fleet", "plan", "tenant-*", "--no-rehearse"]) == ExitCode.OK
        text_out = capsys.readouterr().out
        assert "upgrade **2 database(s)**" in text_out
        assert "`tenant-b`: drifted" in text_out
        assert "ffff00000011" in text_out

        assert main(["fleet", "census", "nobody-*"]) == ExitCode.USAGE
        assert "selector 'nobody-*' matches no known target" in capsys.readouterr().err
