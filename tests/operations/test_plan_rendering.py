"""A revision Alembic cannot render offline: recorded on a copy or refused, never a crash."""

from __future__ import annotations

import pytest

from autopr_migrate.cli.app import main
from autopr_migrate.errors import ExitCode, PreflightRefused
from autopr_migrate.operations.plan import render_planned_sql
from autopr_migrate.operations.preflight import preflight
from autopr_migrate.targets.targets import resolve_target
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums
from tests.support.alembic_run import revision_of
from tests.support.revisions import add_revision

# Batch mode that must copy the table reflects it first: impossible in --sql mode.
RECREATE = (
    """with op.batch_alter_table("workflows", recreate="always") as batch:
    batch.add_column(sa.Column("extra", sa.Integer(), nullable=True))""",
    """with op.batch_alter_table("workflows", recreate="always") as batch:
    batch.drop_column("extra")""",
)


@pytest.mark.both_dialects
def test_a_plan_that_cannot_render_offline_is_recorded_or_refused(migration_target, history):
    engine = at_head_with_rows(migration_target.engine())
    before, start = checksums(engine), revision_of(engine)
    add_revision(history, "cccc00000001", RECREATE)
    target = resolve_target("app")
    checks = preflight(target, "head", fast_policy())
    if target.dialect == "sqlite":
        sql = render_planned_sql(target, checks)
        assert "rendered by applying the upgrade to a scratch copy" in sql
        assert "extra" in sql
    else:
        with pytest.raises(PreflightRefused, match="the SQL could not be rendered"):
            render_planned_sql(target, checks)
    assert checksums(engine) == before and revision_of(engine) == start


def test_lint_of_a_range_that_cannot_render_offline_is_a_data_error(history, capsys):
    start = add_revision(history, "cccc00000002", RECREATE)
    code = main(["lint", "--to", start])
    assert code == ExitCode.DATA
    assert "cannot be linted offline" in capsys.readouterr().err
