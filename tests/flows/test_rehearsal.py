"""Rehearsals on real copies: durations, reversibility, and nothing left behind."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from autopr_migrate.backends.connections import row_counts
from autopr_migrate.backends.postgresql import scratch_family
from autopr_migrate.operations.preflight import preflight
from autopr_migrate.operations.rehearse import SCRATCH_PREFIX, rehearse
from autopr_migrate.policy.parameters import MigrationPolicy, RehearsalPolicy
from autopr_migrate.targets.targets import resolve_target
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums, schema
from tests.support.alembic_run import revision_of
from tests.support.paused import BackgroundRun
from tests.support.revisions import ADD_PRIORITY, FAILING_UPGRADE, add_revision

pytestmark = pytest.mark.both_dialects  # their behaviour differs by dialect

IRREVERSIBLE = (ADD_PRIORITY[0], "pass")  # the downgrade forgets to drop the column


def _rehearse(policy: RehearsalPolicy | None = None):
    target = resolve_target("app")
    checks = preflight(target, "head", MigrationPolicy())
    return rehearse(target, checks, policy or RehearsalPolicy())


def _scratch_databases(engine) -> list[str]:
    with engine.connect() as connection:
        if connection.dialect.name != "postgresql":
            return []
        return list(
            connection.execute(
                text("SELECT datname FROM pg_database WHERE starts_with(datname, :p)"),
                {"p": scratch_family(resolve_target("app"), SCRATCH_PREFIX)},
            ).scalars()
        )


def test_rehearsal_times_each_revision_and_leaves_production_alone(migration_target, history):
    engine = at_head_with_rows(migration_target.engine())
    before = (revision_of(engine), checksums(engine), schema(engine))
    with engine.connect() as connection:
        rows_in_copy = sum(row_counts(connection).values())
    first = add_revision(history, "aaaa00000070", ADD_PRIORITY)
    add_revision(history, "aaaa00000071", ("op.execute('SELECT 1')", "pass"), down=first)
    result = _rehearse()
    assert result.failed is None and result.reversible is True
    assert set(result.revision_seconds) == {"aaaa00000070", "aaaa00000071"}
    assert result.upgrade_seconds > 0 and result.downgrade_seconds is not None
    assert result.rows == rows_in_copy
    assert "reversible: yes" in result.line() and f"{result.rows:,} rows" in result.line()
    assert (revision_of(engine), checksums(engine), schema(engine)) == before
    assert _scratch_databases(engine) == []
    assert not [p for p in migration_target.backup_dir.iterdir() if p.name.startswith(".rehearsal")]


def test_an_irreversible_downgrade_is_reported(migration_target, history) -> None:
    at_head_with_rows(migration_target.engine())
    add_revision(history, "aaaa00000072", IRREVERSIBLE)
    result = _rehearse()
    assert result.reversible is False
    assert "workflows: columns differ" in result.schema_differences
    assert "reversible: **no** (workflows: columns differ)" in result.line()
    assert "then FAILED" in result.line()  # and the second upgrade collides with the leftover


def test_a_failing_upgrade_fails_the_rehearsal_and_drops_the_copy(migration_target, history):
    engine = at_head_with_rows(migration_target.engine())
    before = checksums(engine)
    add_revision(history, "aaaa00000073", FAILING_UPGRADE)
    result = _rehearse()
    assert result.failed and "no_such_column" in result.failed
    assert _scratch_databases(engine) == [] and checksums(engine) == before


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_stale_copies_of_a_killed_rehearsal_are_dropped(
    migration_target, history, postgresql_admin_url
) -> None:
    engine = at_head_with_rows(migration_target.engine())
    add_revision(history, "aaaa00000074", ADD_PRIORITY)
    from tests.support.databases import _autocommit

    admin = _autocommit(postgresql_admin_url)
    with admin.connect() as connection:
        stale = f"{scratch_family(resolve_target('app'), SCRATCH_PREFIX)}deadbeef00"
        connection.exec_driver_sql(f'CREATE DATABASE "{stale}"')
    admin.dispose()
    assert _rehearse().reversible is True
    assert _scratch_databases(engine) == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_role_that_cannot_create_databases_is_refused(migration_target, history, monkeypatch):
    engine = at_head_with_rows(migration_target.engine())
    add_revision(history, "aaaa00000075", ADD_PRIORITY)
    role = f"autopr_no_createdb_{uuid.uuid4().hex[:8]}"
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN NOCREATEDB")
        connection.exec_driver_sql(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        connection.commit()
    url = migration_target.url.set(username=role)
    monkeypatch.setenv("AUTOPR_DB_APP_URL", url.render_as_string(hide_password=False))
    try:
        with pytest.raises(Exception, match=r"may not create databases.*CREATEDB"):
            _rehearse()
    finally:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"DROP OWNED BY {role}")
            connection.exec_driver_sql(f"DROP ROLE {role}")
            connection.commit()


def test_the_approval_text_shows_the_rehearsal(migration_target, history) -> None:
    at_head_with_rows(migration_target.engine())
    add_revision(history, "aaaa00000076", ADD_PRIORITY)
    background = BackgroundRun(
        target="app", policy=fast_policy(approval={"mode": "always"}, rehearsal={"enabled": True})
    )
    run = background.paused()
    from prefect.flow_runs import resume_flow_run
    from prefect.input import read_flow_run_input
    from prefect.input.run_input import keyset_from_paused_state

    description = read_flow_run_input(
        keyset_from_paused_state(run.state)["description"], flow_run_id=run.id
    )
    resume_flow_run(run.id, run_input={"decision": "reject", "approver": "x", "reason": "t"})
    background.result()
    assert "rehearsed on a copy of" in description and "reversible: yes" in description
