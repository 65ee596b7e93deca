"""Revisions Alembic cannot render offline: recorded on a copy, or "SQL unknown", never a crash."""

from __future__ import annotations

import pytest

from autopr_migrate.cli.app import main
from autopr_migrate.errors import ExitCode
from autopr_migrate.history.recording import with_parameters
from autopr_migrate.model import RiskLevel
from autopr_migrate.operations.plan import SqlSource, build_plan, planned_sql
from autopr_migrate.operations.preflight import downgrade_preflight, preflight
from autopr_migrate.operations.rehearse import rehearse
from autopr_migrate.operations.risk import lint_plan, risk_of
from autopr_migrate.policy.parameters import RehearsalPolicy
from autopr_migrate.targets.targets import resolve_target
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums
from tests.support.alembic_run import revision_of, upgrade
from tests.support.revisions import add_revision

# Batch mode that must copy the table reflects it first: impossible in --sql mode.
RECREATE = (
    """with op.batch_alter_table("workflows", recreate="always") as batch:
    batch.add_column(sa.Column("extra", sa.Integer(), nullable=True))""",
    """with op.batch_alter_table("workflows", recreate="always") as batch:
    batch.drop_column("extra")""",
)
# A revision that inspects the live schema first: offline there is none.
INSPECTS = (
    """columns = [c["name"] for c in sa.inspect(op.get_bind()).get_columns("workflows")]
if "extra" not in columns:
    op.add_column("workflows", sa.Column("extra", sa.Integer(), nullable=True))""",
    'op.drop_column("workflows", "extra")',
)
# A data migration that reads the database: offline there is no database to read.
READS_THE_DATABASE = (
    """bind = op.get_bind()
count = bind.execute(sa.text("SELECT count(*) FROM workflows")).scalar()
bind.execute(
    sa.text("UPDATE workflows SET name = name || :suffix WHERE id > :low"),
    {"suffix": f" ({count})", "low": 0},
)
op.create_index("ix_workflows_name_read", "workflows", ["name"])""",
    'op.drop_index("ix_workflows_name_read", table_name="workflows")',
)


@pytest.mark.both_dialects
def test_a_revision_that_cannot_render_offline_is_recorded_on_a_copy(migration_target, history):
    engine = at_head_with_rows(migration_target.engine())
    before, start = checksums(engine), revision_of(engine)
    add_revision(history, "cccc00000001", READS_THE_DATABASE)
    add_revision(history, "cccc00000002", INSPECTS)
    target = resolve_target("app")
    checks = preflight(target, "head", fast_policy())

    offline_only = build_plan(target, checks)
    if target.dialect == "sqlite":  # a copy of the file is made right there
        assert offline_only.planned.recorded == ["cccc00000001", "cccc00000002"]
        # recorded SQLite SQL is shown, but lint reads PostgreSQL: a person reads it
        risk = risk_of(lint_plan(target, checks, offline_only), None, offline_only.planned.unknown)
        assert risk.level == RiskLevel.HIGH
        assert "not linted: cccc00000001, cccc00000002" in risk.summary[0]
    else:
        assert offline_only.planned.unknown == ["cccc00000001", "cccc00000002"]
        assert "SQL unknown for revision cccc00000001" in offline_only.sql
        risk = risk_of(lint_plan(target, checks, offline_only), None, offline_only.planned.unknown)
        assert risk.level == RiskLevel.HIGH
        assert "SQL unknown for revisions cccc00000001, cccc00000002" in risk.summary[0]

    rehearsal = rehearse(target, checks, RehearsalPolicy(enabled=True))
    assert rehearsal.failed is None and set(rehearsal.recorded) >= {"cccc00000001"}
    plan = offline_only.with_recorded(rehearsal.recorded)
    sources = {step.revision: step.source for step in plan.planned.steps}
    assert sources["cccc00000001"] == sources["cccc00000002"] == SqlSource.RECORDED
    assert plan.planned.unknown == []
    assert "recorded by running it on a scratch copy" in plan.sql
    assert "ix_workflows_name_read" in plan.sql and "extra" in plan.sql
    # The data migration's parameters are written in: the recorded SQL reads as what ran.
    assert "|| ' (" in plan.sql and "WHERE id > 0" in plan.sql
    if target.dialect == "postgresql":
        report = lint_plan(target, checks, plan)
        assert report is not None
        rules = {finding.rule for finding in report.findings}
        assert {"blocking-index", "unbatched-backfill"} <= rules  # both read from recorded SQL
    assert checksums(engine) == before and revision_of(engine) == start


def test_parameters_are_written_in_as_literals():
    named = with_parameters(
        "UPDATE t SET a = %(a)s WHERE b = %(b)s AND c LIKE 'x%%'", {"a": "it's 50%%", "b": None}
    )
    assert named == "UPDATE t SET a = 'it''s 50%%' WHERE b = NULL AND c LIKE 'x%';"
    assert (
        with_parameters("INSERT INTO t VALUES (?, ?)", (1, True), paramstyle="qmark")
        == "INSERT INTO t VALUES (1, TRUE);"
    )
    # a placeholder inside a string literal is text, not a parameter
    numbered = with_parameters(
        "SELECT $2, 'costs $1', $1",
        [float("nan"), "x'); DROP TABLE users; --"],
        paramstyle="numeric_dollar",
    )
    assert numbered == "SELECT 'x''); DROP TABLE users; --', 'costs $1', 'nan';"
    many = with_parameters("INSERT INTO t VALUES (%(a)s)", [{"a": 1}, {"a": 2}], True)
    assert many == "INSERT INTO t VALUES (1);  -- the first of 2 parameter sets"
    assert with_parameters("UPDATE t SET p = '50%%'", {}) == "UPDATE t SET p = '50%';"


def test_lint_of_a_range_that_cannot_render_offline_is_a_data_error(history, capsys):
    start = add_revision(history, "cccc00000002", RECREATE)
    code = main(["lint", "--to", start])
    assert code == ExitCode.DATA
    assert "cannot be linted offline" in capsys.readouterr().err


def test_a_branched_history_is_planned_revision_by_revision_from_each_ones_parent(
    migration_target, history
):
    at_head_with_rows(migration_target.engine())
    start = revision_of(migration_target.engine())
    add_revision(history, "bbbb00000001", INSPECTS, down=start)
    tier = (
        'op.add_column("workflows", sa.Column("tier", sa.Integer()))',
        'op.drop_column("workflows", "tier")',
    )
    add_revision(history, "bbbb00000002", tier, down=start)
    add_revision(history, "bbbb00000003", ("pass", "pass"), down=("bbbb00000001", "bbbb00000002"))
    target = resolve_target("app")
    checks = preflight(target, "head", fast_policy())
    postgresql = planned_sql(target, checks, dialect="postgresql")
    steps = {step.revision: step for step in postgresql.steps}
    assert steps["bbbb00000001"].source == SqlSource.UNKNOWN
    assert steps["bbbb00000003"].source == SqlSource.UNKNOWN  # a merge: only with its branches
    branch = steps["bbbb00000002"]
    assert branch.source == SqlSource.RENDERED and branch.start == start
    assert branch.sql.count("ADD COLUMN tier") == 1
    assert postgresql.text.count("ADD COLUMN tier") == 1  # never twice, never under the merge

    upgrade(migration_target.engine(), "heads")
    back = downgrade_preflight(target, start, confirm_base=False, policy=fast_policy())
    down = planned_sql(target, back, dialect="postgresql")  # across the merge: no crash
    assert "DROP COLUMN tier" in down.text
