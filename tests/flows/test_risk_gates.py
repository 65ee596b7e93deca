"""The risk level gates the run: critical is blocked, high always needs a person."""

from __future__ import annotations

import pytest
from prefect.flow_runs import resume_flow_run
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from autopr.database import make_engine
from autopr_migrate.flows.migrate import migrate
from autopr_migrate.policy.parameters import RiskPolicy
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums, schema
from tests.support.alembic_run import revision_of
from tests.support.databases import create_database, drop_database, recreate_from_template
from tests.support.paused import BackgroundRun
from tests.support.prefect_api import run_artifacts
from tests.support.revisions import BREAK_APPLICATION, add_revision

# float8 -> numeric rewrites every row; varchar(20) -> text changes nothing on disk.
RETYPE = (
    'op.alter_column("workflow_executions", "duration_seconds", type_=sa.Numeric())',
    'op.alter_column("workflow_executions", "duration_seconds", type_=sa.Float())',
)
WIDEN = (
    'op.alter_column("workflow_executions", "status", type_=sa.Text())',
    'op.alter_column("workflow_executions", "status", type_=sa.String(20))',
)


def _reject(background: BackgroundRun) -> object:
    run = background.paused()
    resume_flow_run(run.id, run_input={"decision": "reject", "approver": "ops", "reason": "t"})
    return background.result()


def test_high_risk_needs_a_person_even_when_the_policy_says_never(migration_target, history):
    engine = at_head_with_rows(migration_target.engine())
    add_revision(history, "aaaa00000080", BREAK_APPLICATION)
    background = BackgroundRun(target="app", policy=fast_policy(approval={"mode": "never"}))
    state = _reject(background)
    assert state.is_failed() and "rejected by ops" in state.message
    assert revision_of(engine) != "aaaa00000080"


@pytest.fixture(scope="module")
def big_template(postgresql_admin_url):
    """A database at head with a million executions, analyzed: copied for each test (fast)."""
    url = create_database(postgresql_admin_url, prefix="autopr_big_template")
    engine = at_head_with_rows(make_engine(url, poolclass=NullPool))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO workflow_executions (id, workflow_id, status) "
                "SELECT g, 1, 'done' FROM generate_series(1000, 1000999) g"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE workflow_executions")
    engine.dispose()
    yield url.database
    drop_database(postgresql_admin_url, url.database)


@pytest.fixture
def big_table(migration_target, big_template, postgresql_admin_url):
    recreate_from_template(postgresql_admin_url, migration_target.url.database, big_template)
    return migration_target.engine()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_critical_risk_is_blocked_without_an_override(big_table, history) -> None:
    before = (revision_of(big_table), schema(big_table))
    add_revision(history, "aaaa00000081", RETYPE)
    state = migrate(target="app", policy=fast_policy(), return_state=True)
    assert state.is_failed()
    assert "risk is critical (table-rewrite" in state.message and "allow_critical" in state.message
    assert "workflow_executions: ~1,000,040 rows" in state.message
    assert (revision_of(big_table), schema(big_table)) == before
    lint = run_artifacts(state.state_details.flow_run_id)["migration-lint-app"]
    assert "table-rewrite" in lint and "critical" in lint


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_override_with_a_reason_lets_a_critical_plan_ask_for_approval(big_table, history):
    before = checksums(big_table)
    add_revision(history, "aaaa00000082", RETYPE)
    override = RiskPolicy(allow_critical=True, override_reason="INC-42: the column must grow")
    policy = fast_policy(approval={"mode": "never"}).model_copy(update={"risk": override})
    state = _reject(BackgroundRun(target="app", policy=policy))
    assert state.is_failed() and "rejected by ops" in state.message
    assert checksums(big_table) == before


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_change_postgresql_makes_in_place_is_not_critical_on_a_big_table(big_table, history):
    goal = add_revision(history, "aaaa00000083", WIDEN)
    state = migrate(target="app", policy=fast_policy(), return_state=True)
    assert state.is_completed(), state.message
    assert revision_of(big_table) == goal
    lint = run_artifacts(state.state_details.flow_run_id)["migration-lint-app"]
    assert "table-rewrite" not in lint
