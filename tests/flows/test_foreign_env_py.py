"""A project whose ``env.py`` ignores the connection it is handed and opens its own.

Real projects do this (an engine from ``connection.engine.url``, or from their own settings):
the run's lock and statement timeouts must reach that session too.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import suppress
from pathlib import Path

import alembic
import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from autopr_migrate.errors import PreflightRefused
from autopr_migrate.flows.migrate import migrate
from autopr_migrate.operations.preflight import preflight
from autopr_migrate.targets.targets import resolve_target
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows
from tests.support.alembic_run import PROJECT_ROOT, revision_of
from tests.support.application import reading
from tests.support.databases import create_database, drop_database
from tests.support.prefect_api import run_artifacts
from tests.support.revisions import ADD_PRIORITY, add_revision

HEAD = "f19c7e25b0a3"
SLOW_ENOUGH = ("op.execute('SELECT pg_sleep(0.2)')", "pass")
OWN_CONNECTION_ENV_PY = """
from alembic import context
from sqlalchemy import create_engine, pool

from autopr.database.models import Base

config = context.config


def run_migrations_offline():
    context.configure(
        dialect_name=config.attributes.get("dialect", "postgresql"),
        target_metadata=Base.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    handed = config.attributes.get("connection")  # looked at only for its URL
    engine = create_engine(handed.engine.url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
"""


def _project_with(env_py: str, tmp_path, monkeypatch):
    root = tmp_path / "own"
    shutil.copytree(
        PROJECT_ROOT / "alembic", root / "migrations", ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / "migrations" / "env.py").write_text(env_py)
    config = tmp_path / "autopr-migrate.toml"
    config.write_text(
        '[projects.own]\nscript_location = "own/migrations"\n[targets.app]\nproject = "own"\n'
    )
    monkeypatch.setenv("AUTOPR_MIGRATE_CONFIG", str(config))
    return root / "migrations" / "versions"


@pytest.fixture
def own_connection_project(migration_target, tmp_path, monkeypatch):
    return _project_with(OWN_CONNECTION_ENV_PY, tmp_path, monkeypatch)


OPENS = "engine = create_engine(handed.engine.url, poolclass=pool.NullPool)"
CONFIGURES = "context.configure(connection=connection, target_metadata=Base.metadata)"
UNSUPPORTED = {
    "strips-the-timeouts": (
        OWN_CONNECTION_ENV_PY.replace(
            CONFIGURES, f'connection.exec_driver_sql("SET lock_timeout = 0")\n        {CONFIGURES}'
        ),
        "does not carry the run's settings (lock_timeout is '0', the run sets '2s')",
    ),
    "another-database": (
        OWN_CONNECTION_ENV_PY.replace(
            OPENS,
            'import os\n    engine = create_engine(os.environ["OTHER_DATABASE_URL"], '
            "poolclass=pool.NullPool)",
        ),
        "would migrate database 'autopr_other_",
    ),
    "two-databases": (
        OWN_CONNECTION_ENV_PY.replace(
            "    engine.dispose()\n",
            "    engine.dispose()\n"
            "    import os\n"
            '    shard = create_engine(os.environ["OTHER_DATABASE_URL"], poolclass=pool.NullPool)\n'
            "    with shard.connect() as connection:\n"
            "        context.configure(connection=connection, target_metadata=Base.metadata)\n"
            "        with context.begin_transaction():\n"
            "            context.run_migrations()\n"
            "    shard.dispose()\n",
        ),
        "migrates 2 databases in one run",
    ),
    "its-own-version-table": (
        OWN_CONNECTION_ENV_PY.replace(
            CONFIGURES, CONFIGURES[:-1] + ', version_table="my_version")'
        ),
        "keeps its revision in 'my_version', but the project declares 'alembic_version'",
    ),
    "never-migrates": (
        OWN_CONNECTION_ENV_PY.replace("    run_migrations_online()", "    pass"),
        "reaches no migration online (context.run_migrations() is never called)",
    ),
}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_an_env_py_that_would_migrate_without_the_runs_guarantees_is_refused_at_preflight(
    case, migration_target, postgresql_admin_url, tmp_path, monkeypatch
):
    env_py, reason = UNSUPPORTED[case]
    _project_with(env_py, tmp_path, monkeypatch)
    other = create_database(postgresql_admin_url, prefix="autopr_other")
    monkeypatch.setenv("OTHER_DATABASE_URL", other.render_as_string(hide_password=False))
    try:
        with pytest.raises(PreflightRefused) as refused:
            preflight(resolve_target("app"), "head", fast_policy())
        assert reason in str(refused.value)
        assert "docs/projects.md" in str(refused.value)
        for url in (migration_target.url, other):
            engine = create_engine(url, poolclass=NullPool)
            assert inspect(engine).get_table_names() == []  # nothing migrated anywhere
            engine.dispose()
    finally:
        drop_database(postgresql_admin_url, other.database)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_preflight_names_the_session_an_env_py_opens_itself(own_connection_project):
    checks = preflight(resolve_target("app"), "head", fast_policy())
    assert checks.migrating_session.startswith(
        "migrates on a connection the project's env.py opens itself (pid "
    )
    assert "lock_timeout 2s, statement_timeout" in checks.migrating_session


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_lock_held_on_the_table_stops_an_env_py_with_its_own_connection(
    own_connection_project, migration_target
):
    engine = at_head_with_rows(migration_target.engine())
    add_revision(own_connection_project, "eeee00000101", ADD_PRIORITY, down=HEAD)
    holder = create_engine(migration_target.url, poolclass=NullPool).connect()
    # Should the timeouts not reach the migrating session, the server ends the holder after
    # 120 s and the test fails on its assertions instead of waiting for ever (30 s could pass
    # before the flow reaches the revision with the whole suite on two cores).
    holder.execute(text("SET idle_in_transaction_session_timeout = '120s'"))
    holder.execute(text("SELECT count(*) FROM workflows"))  # holds ACCESS SHARE until rollback
    policy = fast_policy(lock={"lock_timeout_seconds": 1, "lock_retries": 1})
    started = time.monotonic()
    try:
        state = migrate(target="app", policy=policy, return_state=True)
    finally:
        with suppress(DBAPIError):  # ended by the server already, if it came to that
            holder.rollback()
        holder.close()
    assert state.is_failed(), state.message
    assert "waited longer than lock_timeout=1 s" in state.message
    assert "nothing was changed" in state.message
    assert time.monotonic() - started < 110  # ended by lock_timeout, not by the holder's end
    assert revision_of(engine) == HEAD
    assert "priority" not in {c["name"] for c in inspect(engine).get_columns("workflows")}
    # the upgrade's own session waited, not the application: that is no application impact
    impact = run_artifacts(state.state_details.flow_run_id)["migration-impact-app"]
    assert "no application query waited for a lock" in impact


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_per_revision_times_and_progress_without_the_env_py_hooks(
    own_connection_project, migration_target
):
    at_head_with_rows(migration_target.engine())
    first = add_revision(own_connection_project, "eeee00000102", ADD_PRIORITY, down=HEAD)
    second = add_revision(own_connection_project, "eeee00000103", SLOW_ENOUGH, down=first)
    state = migrate(target="app", policy=fast_policy(), return_state=True)
    assert state.is_completed(), state.message
    artifacts = run_artifacts(state.state_details.flow_run_id)
    report = artifacts["migration-report-app"]
    assert "## Revisions applied" in report
    assert f"| `{first}` |" in report and f"| `{second}` |" in report
    assert float(artifacts["migration-progress-app"]) == 100


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_alembic_s_own_async_template_migrates_with_the_run_s_settings(
    migration_target, tmp_path, monkeypatch
):
    """``alembic init -t async``: an asyncpg engine from ``sqlalchemy.url``, in asyncio.run."""
    template = Path(alembic.__file__).parent / "templates" / "async" / "env.py"
    versions = _project_with(template.read_text(), tmp_path, monkeypatch)
    config = Path(os.environ["AUTOPR_MIGRATE_CONFIG"])
    config.write_text(
        config.read_text().replace(
            "[targets.app]", 'sqlalchemy_url = "{url:postgresql+asyncpg}"\n[targets.app]'
        )
    )
    engine = at_head_with_rows(migration_target.engine())
    add_revision(versions, "eeee00000104", ADD_PRIORITY, down=HEAD)
    checks = preflight(resolve_target("app"), "head", fast_policy())
    assert (
        "opens itself" in checks.migrating_session and "lock_timeout 2s" in checks.migrating_session
    )
    state = migrate(target="app", policy=fast_policy(), return_state=True)
    assert state.is_completed(), state.message
    assert revision_of(engine) == "eeee00000104"


CONNECTABLE_ENV_PY = OWN_CONNECTION_ENV_PY.replace(
    """    handed = config.attributes.get("connection")  # looked at only for its URL
    engine = create_engine(handed.engine.url, poolclass=pool.NullPool)
    with engine.connect() as connection:""",
    """    connectable = config.attributes.get("connection", None)  # SQLAlchemy 1.x's pattern
    if connectable is None:
        connectable = create_engine(config.get_main_option("sqlalchemy.url"))
    with connectable.connect() as connection:""",
).replace("    engine.dispose()\n", "")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_env_py_that_connects_what_it_is_handed_migrates_on_the_run_s_connection(
    migration_target, tmp_path, monkeypatch
):
    """``with connectable.connect() as connection``, as JupyterHub's and MLflow's env.py do."""
    versions = _project_with(CONNECTABLE_ENV_PY, tmp_path, monkeypatch)
    engine = at_head_with_rows(migration_target.engine())
    add_revision(versions, "eeee00000105", ADD_PRIORITY, down=HEAD)
    checks = preflight(resolve_target("app"), "head", fast_policy())
    assert checks.migrating_session.startswith("migrates on the run's own connection")
    state = migrate(target="app", policy=fast_policy(), return_state=True)
    assert state.is_completed(), state.message
    assert revision_of(engine) == "eeee00000105"


HOLDS_THE_TABLE = (
    'op.add_column("workflows", sa.Column("tier", sa.Integer(), nullable=True))\n'
    'op.execute("SELECT pg_sleep(1)")',
    'op.drop_column("workflows", "tier")',
)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_what_the_application_feels_during_the_upgrade_is_recorded(
    own_connection_project, migration_target
):
    """An application reading the table the upgrade holds: its waits are the impact; the
    migration's own sessions are not the application."""
    at_head_with_rows(migration_target.engine())
    add_revision(own_connection_project, "eeee00000106", HOLDS_THE_TABLE, down=HEAD)
    with reading(migration_target.url):
        state = migrate(target="app", policy=fast_policy(), return_state=True)
    assert state.is_completed(), state.message
    impact = run_artifacts(state.state_details.flow_run_id)["migration-impact-app"]
    assert "SELECT count(*) FROM workflows" in impact
    waited = [float(row["waited s"]) for row in json.loads(impact)]
    assert 0.3 <= max(waited) <= 3, waited
