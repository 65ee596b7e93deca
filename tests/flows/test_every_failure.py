"""Any exception in any step ends a run the same way: report, event, the backup kept and named.

The fault here is not a migration error: the role that migrates loses its right to write the
ledger while the run waits for approval, so the run breaks on a database error of its own.
"""

from __future__ import annotations

import uuid

import pytest
from prefect.flow_runs import resume_flow_run
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from autopr.database import make_engine
from autopr_migrate.store.ledger import LEDGER_TABLE, ledger
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums, ledger_rows, schema
from tests.support.alembic_run import revision_of
from tests.support.paused import BackgroundRun
from tests.support.prefect_api import run_artifacts, run_events
from tests.support.revisions import ADD_PRIORITY, add_revision


@pytest.fixture
def migrator(migration_target, monkeypatch):
    """A role without superuser rights that owns the application's tables, as in production."""
    role = f"autopr_migrator_{uuid.uuid4().hex[:8]}"
    admin = make_engine(migration_target.url, poolclass=NullPool)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN"))
        connection.execute(text(f"GRANT USAGE, CREATE ON SCHEMA public TO {role}"))
    url = migration_target.url.set(username=role)
    monkeypatch.setenv("AUTOPR_DB_APP_URL", url.render_as_string(hide_password=False))
    engine = make_engine(url, poolclass=NullPool)
    try:
        yield role, engine, admin
    finally:
        engine.dispose()
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"DROP OWNED BY {role}"))
            connection.execute(text(f"DROP ROLE {role}"))
        admin.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_database_error_outside_the_migration_ends_with_report_event_and_backup(
    migration_target, migrator, history
) -> None:
    role, engine, admin = migrator
    at_head_with_rows(engine)
    with engine.begin() as connection:
        ledger.create(connection, checkfirst=True)
    add_revision(history, "aaaa00000130", ADD_PRIORITY)
    before = (revision_of(engine), checksums(engine), schema(engine))

    background = BackgroundRun(target="app", policy=fast_policy(approval={"mode": "always"}))
    run = background.paused()
    with admin.begin() as connection:
        connection.execute(text(f"REVOKE INSERT, UPDATE ON {LEDGER_TABLE} FROM {role}"))
    resume_flow_run(run.id, run_input={"decision": "approve", "approver": "ops"})
    state = background.result()

    assert state.is_failed()
    message = state.message
    assert "unexpected error" in message and "InsufficientPrivilege" in message
    assert f"nothing was changed (verified: the database is at {before[0]})" in message
    (backup,) = migration_target.backup_dir.glob("*.dump")
    assert f"its backup {backup} is kept" in message
    assert (revision_of(engine), checksums(engine), schema(engine)) == before
    assert ledger_rows(engine) == []
    report = run_artifacts(run.id)["migration-report-app"]
    assert "FAILED" in report and "InsufficientPrivilege" in report
    events = run_events(run.id, "autopr.database.app", expect="autopr.migration.failed")
    assert "InsufficientPrivilege" in events["autopr.migration.failed"]["message"]
