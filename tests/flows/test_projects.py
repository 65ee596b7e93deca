"""A target whose history is another project: declared in a file, with its own version table.

The project here is a copy of the history in a directory of its own, run without an
``alembic.ini`` (``script_location`` only) and keeping its revision in ``svc_schema_version``;
its application is a small service whose /health reads that table.
"""

from __future__ import annotations

import json
import shutil

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import inspect, text
from sqlalchemy.pool import NullPool

from autopr.database import make_engine
from autopr_migrate.cli.app import main
from autopr_migrate.errors import ExitCode
from autopr_migrate.flows.check import check
from autopr_migrate.flows.migrate import migrate
from autopr_migrate.flows.rollback import rollback
from autopr_migrate.targets.targets import resolve_target
from tests.flows.conftest import fast_policy
from tests.flows.helpers import ledger_rows
from tests.support.alembic_run import PROJECT_ROOT
from tests.support.history import heads
from tests.support.paused import migrate_approving
from tests.support.revisions import BREAK_APPLICATION, add_revision
from tests.support.servers import serve

VERSION_TABLE = "svc_schema_version"
HEAD = "f19c7e25b0a3"


def _service(url) -> FastAPI:
    """The project's application: healthy while it can read what it maps."""
    app = FastAPI()
    engine = make_engine(url, poolclass=NullPool)

    @app.get("/health")
    def health():
        try:
            with engine.connect() as connection:
                revision = connection.execute(
                    text(f"SELECT version_num FROM {VERSION_TABLE}")
                ).scalar()
                connection.execute(text("SELECT description FROM workflows LIMIT 1"))
        except Exception as exc:  # any failure to read is what the probe must see
            return JSONResponse({"status": "error", "reason": type(exc).__name__}, 503)
        return {"status": "ok", "revision": revision}

    return app


@pytest.fixture
def svc(migration_target, tmp_path, monkeypatch):
    """Target ``app`` on project ``svc``; yields the project's versions directory."""
    root = tmp_path / "svc"
    shutil.copytree(
        PROJECT_ROOT / "alembic", root / "migrations", ignore=shutil.ignore_patterns("__pycache__")
    )
    config = tmp_path / "autopr-migrate.toml"
    config.write_text(
        "[tool.autopr-migrate.projects.svc]\n"
        'script_location = "svc/migrations"\n'
        f'version_table = "{VERSION_TABLE}"\n'
        'models = "autopr.database.models:Base.metadata"\n'
        "\n[tool.autopr-migrate.targets.app]\n"
        'project = "svc"\n'
    )
    monkeypatch.setenv("AUTOPR_MIGRATE_CONFIG", str(config))
    with serve(_service(migration_target.url)) as base_url:
        monkeypatch.setenv("AUTOPR_DB_APP_HEALTH_URL", f"{base_url}/health")
        yield root / "migrations" / "versions"


def _tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names())


@pytest.mark.both_dialects
def test_a_declared_project_migrates_in_its_own_version_table(svc, migration_target, capsys):
    engine = migration_target.engine()
    assert resolve_target("app").project.version_table == VERSION_TABLE
    state = migrate_approving(target="app", policy=fast_policy())
    assert state.is_completed(), state.message
    assert VERSION_TABLE in _tables(engine) and "alembic_version" not in _tables(engine)
    with engine.connect() as connection:
        assert connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == HEAD
    assert [row["status"] for row in ledger_rows(engine)] == ["succeeded"]
    assert main(["status", "--target", "app", "--format", "json"]) == ExitCode.OK
    status = json.loads(capsys.readouterr().out)
    assert status["current"] == HEAD and status["pending"] == []
    checked = check(targets=["app"], policy=fast_policy(), return_state=True)
    assert checked.is_completed(), checked.message


def test_lint_of_a_project_treats_its_version_table_as_bookkeeping(svc, capsys):
    main(["lint", "--target", "app", "--from", "e5c8f2a1d934", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert report["statements"], "the project's history was linted"
    flagged = [f for f in report["findings"] if VERSION_TABLE in json.dumps(f)]
    assert flagged == []


def test_a_failed_probe_on_a_declared_project_is_rolled_back(svc, migration_target):
    engine = migration_target.engine()
    assert migrate_approving(target="app", policy=fast_policy()).is_completed()
    add_revision(svc, "dddd00000001", BREAK_APPLICATION, down=HEAD)
    state = migrate_approving(target="app", policy=fast_policy())
    assert state.is_failed() and "rolled back: downgraded to" in state.message, state.message
    with engine.connect() as connection:
        assert connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == HEAD
    sidecars = [json.loads(p.read_text()) for p in migration_target.backup_dir.glob("*.json")]
    assert sorted(str(sidecar["revision"]) for sidecar in sidecars) == ["None", HEAD]
    down = rollback(target="app", revision="-1", policy=fast_policy(), return_state=True)
    assert down.is_completed(), down.message
    assert heads() == [HEAD]  # the default project's history was never touched


def test_a_target_naming_an_undeclared_project_is_refused(svc, monkeypatch):
    monkeypatch.setenv("AUTOPR_DB_APP_PROJECT", "billing")
    state = migrate(target="app", policy=fast_policy(), return_state=True)
    assert state.is_failed()
    assert "names project 'billing', which is not declared (declared: svc)" in state.message
    assert "nothing was changed" in state.message
