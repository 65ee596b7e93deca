"""The rehearsal under load: what the application feels on the copy, per statement, against a
baseline; predicted locks against the ones PostgreSQL granted; the budget."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from autopr_migrate.errors import PreflightRefused
from autopr_migrate.operations.impact import assess, gate_impact
from autopr_migrate.operations.preflight import preflight
from autopr_migrate.operations.rehearse import rehearse
from autopr_migrate.operations.risk import lint_plan, risk_of
from autopr_migrate.operations.workloads import parameters_of
from autopr_migrate.policy.parameters import ImpactPolicy, MigrationPolicy, RehearsalPolicy
from autopr_migrate.targets.targets import resolve_target

ENV_PY = """
from alembic import context

config = context.config
if context.is_offline_mode():
    context.configure(dialect_name="postgresql", literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    context.configure(connection=config.attributes["connection"], transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
"""
REVISION = '''"""the change"""
from alembic import op

revision = "c1"
down_revision = None


def upgrade():
{body}


def downgrade():
{undo}
'''
PLAIN_INDEX = (
    '    op.execute("CREATE INDEX ix_orders_note ON orders (note)")',
    '    op.execute("DROP INDEX ix_orders_note")',
)
CONCURRENT_INDEX = (
    "    with op.get_context().autocommit_block():\n"
    '        op.execute("CREATE INDEX CONCURRENTLY ix_orders_note ON orders (note)")',
    "    with op.get_context().autocommit_block():\n"
    '        op.execute("DROP INDEX CONCURRENTLY ix_orders_note")',
)


@pytest.fixture
def orders(migration_target, tmp_path, monkeypatch, request):
    """Target ``app``: 200,000 orders (a test marked ``few_orders``: 20,000), and a project with
    one revision to write."""
    rows = 20_000 if request.node.get_closest_marker("few_orders") else 200_000
    engine = create_engine(migration_target.url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE orders (id bigint PRIMARY KEY, note text)"))
        connection.execute(
            text("INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, :rows) g"),
            {"rows": rows},
        )
        connection.execute(text("ANALYZE orders"))
    engine.dispose()
    root = tmp_path / "shop"
    (root / "versions").mkdir(parents=True)
    (root / "env.py").write_text(ENV_PY)
    config = tmp_path / "autopr-migrate.toml"
    config.write_text(
        f'[projects.shop]\nscript_location = "{root}"\n[targets.app]\nproject = "shop"\n'
    )
    monkeypatch.setenv("AUTOPR_MIGRATE_CONFIG", str(config))

    def write(change: tuple[str, str]) -> None:
        (root / "versions" / "c1_change.py").write_text(
            REVISION.format(body=change[0], undo=change[1])
        )

    return write


def _rehearsed(policy: ImpactPolicy):
    target = resolve_target("app")
    checks = preflight(target, "head", MigrationPolicy())
    report = lint_plan(target, checks)
    rehearsal = rehearse(target, checks, RehearsalPolicy(), impact=policy, tables=report.tables)
    impact = assess(rehearsal.load, report, policy, why_not=rehearsal.load_skipped)
    return report, rehearsal, impact


# 200 transactions a second, a quarter to a half of them writes: a 0.2 s build meets a dozen.
LOAD = ImpactPolicy(rate=200, clients=4, baseline_seconds=1, max_wait_ms=50)


def _top_queries_recorded(url) -> None:
    """``pg_stat_statements`` needs a server restart to load, which a shared test server cannot
    have: a table of the same shape in the target's database stands in for its view."""
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(
            text("CREATE TABLE pg_stat_statements (dbid oid, query text, calls bigint)")
        )
        connection.execute(
            text(
                "INSERT INTO pg_stat_statements SELECT d.oid, q.query, q.calls "
                "FROM pg_database d, (VALUES "
                "('SELECT note FROM orders WHERE id = $1', 900), "
                "('UPDATE orders SET note = $1 WHERE orders.id = $2', 300), "
                "('SELECT note FROM orders WHERE note LIKE $1 || $2', 200), "
                "('INSERT INTO orders VALUES ($1, $2)', 100), "
                "('SELECT count(*) FROM unrelated', 50)) q(query, calls) "
                "WHERE d.datname = current_database()"
            )
        )
    engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_report_catches_a_blocking_index_build_and_passes_its_concurrent_twin(
    orders, migration_target
):
    """Under the target's own top queries, replayed with parameters sampled from the copy."""
    _top_queries_recorded(migration_target.url)
    orders(PLAIN_INDEX)
    report, rehearsal, plain = _rehearsed(LOAD)
    assert plain.measured
    assert plain.workload.startswith("the target's 2 most frequent queries on these tables")
    (build,) = [s for s in plain.statements if s.statement.startswith("CREATE INDEX")]
    assert build.waits >= 1 and build.longest_wait > 0.05, plain.rows()
    assert build.locks == "orders: SHARE" and build.predicted == "SHARE"
    assert plain.over_budget and plain.over_budget[0].startswith("a query waited")
    assert plain.baseline.p99_ms < plain.during.p99_ms
    assert not plain.failed and not plain.mismatches
    risk = risk_of(report, rehearsal, (), plain)
    assert risk.level == "high"  # over the budget: a person decides, whatever the mode
    assert risk.application[0].startswith("**Application impact on the copy** (**over budget**")
    with pytest.raises(PreflightRefused, match=r"over the budget \(a query waited"):
        gate_impact(plain, LOAD.model_copy(update={"over_budget": "refuse"}))
    gate_impact(plain, LOAD)  # "person": it goes on, to a person

    orders(CONCURRENT_INDEX)
    report, rehearsal, concurrent = _rehearsed(LOAD)
    assert concurrent.measured and concurrent.over_budget == []
    assert concurrent.longest_wait == 0 and not concurrent.failed
    (build,) = [s for s in concurrent.statements if "CONCURRENTLY" in s.statement]
    assert build.locks == "orders: SHARE UPDATE EXCLUSIVE" and build.waits == 0
    assert "within budget" in risk_of(report, rehearsal, (), concurrent).application[0]


HIDDEN_LOCK = (
    '    op.execute("DO $$ BEGIN LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; '
    'PERFORM pg_sleep(0.25); END $$")',
    "    pass",
)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.few_orders
def test_a_lock_postgresql_took_that_the_analyzer_did_not_predict_is_a_high_finding(orders):
    orders(HIDDEN_LOCK)
    report, rehearsal, impact = _rehearsed(LOAD)
    (mismatch,) = impact.mismatches
    assert mismatch.level == "high"
    assert report.statements[mismatch.statement - 1].kind == "DoStmt"  # the plan's statement
    assert "PostgreSQL held ACCESS EXCLUSIVE on orders; the analyzer predicted no lock" in (
        mismatch.message
    )
    risk = risk_of(report, rehearsal, (), impact)
    assert risk.level == "high"
    assert f"**high** lock-mismatch (statement {mismatch.statement}): `DO $$" in risk.summary[0]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.few_orders
def test_workload_failures_after_the_change_are_failed_queries(orders, tmp_path):
    """A workload of the policy's own whose query the change breaks."""
    script = tmp_path / "app.sql"
    script.write_text("\\set id random(1, 20000)\nSELECT note FROM orders WHERE id = :id;\n")
    orders(('    op.execute("ALTER TABLE orders RENAME COLUMN note TO remark")', "    pass"))
    policy = LOAD.model_copy(update={"workload_file": str(script)})
    _, _, impact = _rehearsed(policy)
    assert impact.workload == "the policy's workload file app.sql"
    assert impact.failed and 'column "note" does not exist' in impact.failed[0]
    assert "failed quer" in impact.over_budget[-1]


def test_a_parameter_is_sampled_only_where_its_column_is_known():
    assert parameters_of("SELECT * FROM t WHERE t.id = $1 AND kind <> $2 LIMIT $3") == {
        1: ("t", "id"),
        2: (None, "kind"),
        3: ("", "limit"),
    }
    assert parameters_of("SELECT * FROM t WHERE name LIKE $1") is None
    assert parameters_of("SELECT * FROM t WHERE id = ANY($1)") is None
