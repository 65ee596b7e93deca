"""Histories nobody here wrote, as their projects ship them on the registry.

- Optuna's storage history (the pinned ``optuna`` wheel): its ``env.py`` ignores the connection
  it is handed and builds its own engine from ``sqlalchemy.url``; two of the revisions a run
  applies are data migrations that read the database, so they cannot be rendered offline.
- Prefect server's own PostgreSQL history (in the installed ``prefect`` wheel): its ``env.py``
  reads the database from Prefect's settings, uses asyncpg, hands the work to an event loop's
  worker thread and sets its version folder at run time; it is declared with the environment
  variable that points Prefect's settings at the target, and so runs in a process of its own.

Each database starts a few revisions behind head, with rows in it, from a template made once.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import optuna
import prefect
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from autopr_migrate.cli.app import main
from autopr_migrate.errors import ExitCode
from autopr_migrate.flows.check import check
from autopr_migrate.flows.migrate import migrate
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.model import TOOL_OWNED_TABLES
from autopr_migrate.targets.project import project_for
from tests.flows.conftest import fast_policy
from tests.flows.helpers import ledger_rows
from tests.support.databases import (
    create_database,
    drop_database,
    recreate_from_template,
    table_checksums,
)
from tests.support.paused import migrate_approving
from tests.support.prefect_api import run_artifacts
from tests.support.servers import serve

# Optuna's revisions compare the seeded extremes with float32 limits through numpy.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

OPTUNA = Path(optuna.__file__).parent / "storages" / "_rdb"
PREFECT = Path(prefect.__file__).parent / "server" / "database"


@dataclass(frozen=True)
class History:
    name: str
    declaration: str  # the project's keys in the tool's configuration file
    start: str  # where the database is before the run
    pending: tuple[str, ...]  # what the run applies, in order
    not_renderable: tuple[str, ...]  # revisions that read the database while they run
    seed: str  # rows put in at ``start``
    reads: str  # what the application reads to answer /health
    lock: str  # a lock another session holds that a pending revision must wait for

    @property
    def head(self) -> str:
        return self.pending[-1]


HISTORIES = {
    "optuna": History(
        name="optuna",
        declaration=(
            f'config = "{OPTUNA / "alembic.ini"}"\n'
            f'script_location = "{OPTUNA / "alembic"}"\n'
            'models = "optuna.storages._rdb.models:BaseModel.metadata"\n'
        ),
        start="v3.0.0.b",
        pending=("v3.0.0.c", "v3.0.0.d", "v3.2.0.a"),
        not_renderable=("v3.0.0.c", "v3.0.0.d"),
        seed=(
            "INSERT INTO studies (study_name) VALUES ('tuning');"
            "INSERT INTO trials (study_id, state, number) "
            "SELECT 1, 'COMPLETE', g FROM generate_series(0, 19) g;"
            "INSERT INTO trial_values (trial_id, value, objective) "
            "SELECT trial_id, CASE WHEN trial_id = 1 THEN 1e300 ELSE trial_id END, 0 FROM trials;"
            "INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value) "
            "SELECT trial_id, 0, CASE WHEN trial_id = 1 THEN -1e300 ELSE 0.5 END FROM trials;"
        ),
        reads="SELECT count(*) FROM trials JOIN trial_values USING (trial_id)",
        # v3.0.0.c adds a column to it: ACCESS EXCLUSIVE, behind any reader
        lock="SELECT count(*) FROM trial_intermediate_values",
    ),
    "prefect": History(
        name="prefect",
        declaration=(
            f'config = "{PREFECT / "alembic.ini"}"\n'
            f'version_locations = ["{PREFECT / "_migrations" / "versions" / "postgresql"}"]\n'
            "[projects.prefect.environment]\n"
            'PREFECT_API_DATABASE_CONNECTION_URL = "{url:postgresql+asyncpg}"\n'
        ),
        start="50737cdaee36",
        pending=("9e9dadc36797", "c8d5f2a71b3e", "d4a7e1c93f52"),
        not_renderable=("c8d5f2a71b3e", "d4a7e1c93f52"),
        seed=(
            "INSERT INTO flow (name) VALUES ('nightly'), ('hourly');"
            "INSERT INTO flow_run (flow_id, name) "
            "SELECT id, name || '-' || g FROM flow, generate_series(1, 25) g;"
        ),
        reads="SELECT count(*) FROM flow_run JOIN flow ON flow.id = flow_run.flow_id",
        # 9e9dadc36797 builds an index on it CONCURRENTLY: SHARE UPDATE EXCLUSIVE waits for SHARE
        lock="LOCK TABLE flow_run IN SHARE MODE",
    ),
}


def _configuration(directory: Path) -> Path:
    path = directory / "autopr-migrate.toml"
    path.write_text(
        "".join(
            f"[projects.{history.name}]\n{history.declaration}\n[targets.{history.name}]\n"
            f'project = "{history.name}"\n\n'
            for history in HISTORIES.values()
        )
    )
    return path


@pytest.fixture(scope="session")
def third_party_templates(tmp_path_factory, postgresql_admin_url):
    """Per history, a database at its start revision with rows in it (made on first use)."""
    configuration = _configuration(tmp_path_factory.mktemp("third-party"))
    made: dict[str, str] = {}

    def template(history: History) -> str:
        if history.name not in made:
            url = create_database(postgresql_admin_url, prefix=f"autopr_tpl_{history.name}")
            project = project_for(history.name, {"AUTOPR_MIGRATE_CONFIG": str(configuration)})
            engine = create_engine(url, poolclass=NullPool)
            with engine.connect() as connection:
                alembic_ops.upgrade(project, connection, history.start)
                connection.exec_driver_sql(history.seed)
                connection.exec_driver_sql("ANALYZE")
                connection.commit()
            engine.dispose()
            made[history.name] = url.database
        return made[history.name]

    yield configuration, template
    for name in made.values():
        drop_database(postgresql_admin_url, name)


class Application:
    """The project's application: healthy while it reads its rows, and (when told) broken by
    the schema of one revision."""

    def __init__(self, url, history: History) -> None:
        self.engine = create_engine(url, poolclass=NullPool)
        self.history = history
        self.breaks_at: str | None = None

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/health")
        def health():
            try:
                with self.engine.connect() as connection:
                    revision = connection.execute(
                        text("SELECT version_num FROM alembic_version")
                    ).scalar()
                    connection.execute(text(self.history.reads)).scalar()
            except Exception as exc:  # any failure to read is what the probe must see
                return JSONResponse({"status": "error", "reason": type(exc).__name__}, 503)
            if revision == self.breaks_at:
                return JSONResponse({"status": "error", "reason": "incompatible schema"}, 503)
            return {"status": "ok", "revision": revision}

        return app


@dataclass
class ThirdPartyTarget:
    history: History
    url: str
    application: Application
    backup_dir: Path

    def engine(self):
        return create_engine(self.url, poolclass=NullPool)

    def revision(self) -> str:
        engine = self.engine()
        with engine.connect() as connection:
            found = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        engine.dispose()
        return found

    def data(self) -> dict:
        engine = self.engine()
        with engine.connect() as connection:
            found = table_checksums(
                connection, exclude=frozenset({"alembic_version", *TOOL_OWNED_TABLES})
            )
        engine.dispose()
        return found


@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.long) for name in sorted(HISTORIES)])
def third_party(request, third_party_templates, postgresql_admin_url, tmp_path, monkeypatch):
    """Target ``app`` on a copy of the history's template, its application served over HTTP."""
    history = HISTORIES[request.param]
    configuration, template = third_party_templates
    name = f"autopr_test_{history.name}_{uuid.uuid4().hex[:10]}"
    recreate_from_template(postgresql_admin_url, name, template(history))
    url = postgresql_admin_url.set(database=name).render_as_string(hide_password=False)
    application = Application(url, history)
    target = ThirdPartyTarget(history, url, application, tmp_path / "backups")
    monkeypatch.setenv("AUTOPR_MIGRATE_CONFIG", str(configuration))
    monkeypatch.setenv("AUTOPR_DB_APP_URL", url)
    monkeypatch.setenv("AUTOPR_DB_APP_PROJECT", history.name)
    monkeypatch.setenv("AUTOPR_DB_APP_BACKUP_DIR", str(target.backup_dir))
    with serve(application.app()) as base_url:
        monkeypatch.setenv("AUTOPR_DB_APP_HEALTH_URL", f"{base_url}/health")
        yield target
    application.engine.dispose()
    drop_database(postgresql_admin_url, name)


def test_the_whole_chain_on_a_third_party_history(third_party, capsys):
    history = third_party.history
    before = third_party.data()
    policy = fast_policy(approval={"mode": "always"}, rehearsal={"enabled": True})
    state = migrate_approving(target="app", requested_by="dev", policy=policy)
    assert state.is_completed(), state.message
    assert third_party.revision() == history.head

    artifacts = run_artifacts(state.state_details.flow_run_id)
    plan = artifacts["migration-plan-app"]
    assert "recorded by running it on a scratch copy" in plan
    assert (
        f"Recorded on a scratch copy of the database (Alembic cannot render them offline): "
        f"{', '.join(history.not_renderable)}" in plan
    )
    assert "SQL unknown" not in plan
    whose = "of its own process" if history.name == "prefect" else "the project's env.py opens"
    assert f"the project's env.py migrates on a connection {whose}" in plan
    assert "lock_timeout 2s" in plan
    report = artifacts["migration-report-app"]
    for revision in history.pending:
        assert f"| `{revision}` |" in report
    assert float(artifacts["migration-progress-app"]) == 100

    row = ledger_rows(third_party.engine())[-1]
    assert (row["status"], row["from_revision"], row["to_revision"]) == (
        "succeeded",
        history.start,
        history.head,
    )
    assert (row["requested_by"], row["approved_by"]) == ("dev", "test-approver")
    assert set(history.pending) <= set(json.loads(row["revision_checksums"]))
    after = third_party.data()
    assert {table: rows for table, (rows, _) in after.items() if table in before} == {
        table: rows for table, (rows, _) in before.items()
    }

    assert main(["status", "--target", "app", "--format", "json"]) == ExitCode.OK
    status = json.loads(capsys.readouterr().out)
    assert (status["current"], status["pending"]) == (history.head, [])
    checked = check(targets=["app"], policy=fast_policy(), return_state=True)
    assert checked.is_completed(), checked.message


@pytest.mark.parametrize("third_party", ["optuna"], indirect=True)
def test_a_failed_probe_on_a_third_party_history_puts_it_back(third_party):
    history = third_party.history
    before = third_party.data()
    third_party.application.breaks_at = history.head
    state = migrate_approving(target="app", policy=fast_policy())  # SQL unknown: a person asked
    assert state.is_failed(), state.message
    assert "not healthy at revision" in state.message, state.message
    # Optuna's v3.0.0.c cannot be downgraded (its downgrade() fails): the backup puts it back.
    assert (
        f"rolled back: downgraded to {history.start}" in state.message
        or f"the database is at {history.start}" in state.message
    ), state.message
    assert third_party.revision() == history.start
    assert third_party.data() == before
    row = ledger_rows(third_party.engine())[-1]
    assert row["status"] in ("rolled_back", "restored") and row["from_revision"] == history.start


def test_a_lock_held_stops_a_third_party_revision_after_lock_timeout(third_party):
    history = third_party.history
    before = third_party.data()
    holder = create_engine(third_party.url, poolclass=NullPool).connect()
    # Should the timeouts not reach the migrating session, the server ends the holder after
    # 120 s and the test fails on its assertions instead of waiting for ever. (30 s was less
    # than this flow takes to reach the revision with the whole suite on two cores.)
    holder.execute(text("SET idle_in_transaction_session_timeout = '120s'"))
    holder.execute(text(history.lock))
    policy = fast_policy(lock={"lock_timeout_seconds": 1, "lock_retries": 1})
    started = time.monotonic()
    try:
        state = migrate_approving(target="app", policy=policy)
    finally:
        with suppress(DBAPIError):
            holder.rollback()
        holder.close()
    assert state.is_failed(), state.message
    assert "waited longer than lock_timeout=1 s" in state.message, state.message
    assert time.monotonic() - started < 110  # ended by lock_timeout, not by the holder's end
    assert third_party.revision() == history.start
    assert third_party.data() == before
    engine = third_party.engine()
    with engine.connect() as connection:
        invalid = connection.execute(text("SELECT count(*) FROM pg_index WHERE NOT indisvalid"))
        assert invalid.scalar() == 0
    engine.dispose()


@pytest.mark.parametrize("third_party", ["prefect"], indirect=True)
@pytest.mark.parametrize(
    ("isolated", "reason"),
    [(False, "the env.py of project 'prefect' fails before migrating (NoEventLoopError")],
    ids=["worker-process"],
)
def test_a_history_whose_env_py_migrates_elsewhere_is_refused_at_preflight(
    third_party, isolated, reason, tmp_path, monkeypatch
):
    """Prefect's history without the variable that points its settings at the target, run in
    the worker's process: its env.py cannot even start (in a process of its own it would
    migrate Prefect's default database: the "another database" refusal)."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    configuration = tmp_path / "without-environment.toml"
    declaration = third_party.history.declaration.split("[projects.prefect.environment]")[0]
    configuration.write_text(
        f"[projects.prefect]\n{declaration}isolated = {str(isolated).lower()}\n"
    )
    monkeypatch.setenv("AUTOPR_MIGRATE_CONFIG", str(configuration))
    before = third_party.data()
    state = migrate(target="app", policy=fast_policy(), return_state=True)
    assert state.is_failed()
    assert reason.format(home=tmp_path / "prefect-home") in state.message, state.message
    assert "nothing was changed" in state.message
    assert third_party.revision() == third_party.history.start
    assert third_party.data() == before
