"""Revisions that tests add on top of a copy of the real history."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.support.history import heads

TEMPLATE = '''"""{message}"""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''

ADD_PRIORITY = (
    """with op.batch_alter_table("workflows") as batch:
    batch.add_column(sa.Column("priority", sa.Integer(), nullable=True))
op.execute("UPDATE workflows SET priority = version")""",
    """with op.batch_alter_table("workflows") as batch:
    batch.drop_column("priority")""",
)
# The running application maps workflows.description: after this, /health answers 503.
BREAK_APPLICATION = (
    """with op.batch_alter_table("workflows") as batch:
    batch.alter_column("description", new_column_name="details", existing_type=sa.Text())""",
    """with op.batch_alter_table("workflows") as batch:
    batch.alter_column("details", new_column_name="description", existing_type=sa.Text())""",
)
FAILING_DOWNGRADE = (BREAK_APPLICATION[0], """op.execute("SELECT no_such_column FROM workflows")""")
FAILING_UPGRADE = (
    """with op.batch_alter_table("workflows") as batch:
    batch.add_column(sa.Column("half_done", sa.Integer(), nullable=True))
op.execute("SELECT no_such_column FROM workflows")""",
    "pass",
)
# Slow only when it runs, not while a plan renders its SQL offline.
SLOW = (
    """if not op.get_context().as_sql:
    import time; time.sleep(3)""",
    "pass",
)
# A new table whose foreign key points at an existing one, and an application it breaks, and a
# downgrade that fails: only a restore can put this back.
NEW_TABLE_THEN_STUCK = (
    """op.create_table(
    "labels",
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("workflow_id", sa.Integer(), sa.ForeignKey("workflows.id"), nullable=False),
)
op.execute("INSERT INTO labels (workflow_id) SELECT id FROM workflows")
"""
    + BREAK_APPLICATION[0],
    """op.execute("SELECT no_such_column FROM workflows")""",
)
# PostgreSQL: a concurrent build that fails midway (duplicate statuses) leaves an INVALID index.
CONCURRENT_INDEX = (
    """with op.get_context().autocommit_block():
    op.create_index("ix_workflows_name_created", "workflows", ["status"], unique=True,
                    postgresql_concurrently=True)""",
    """with op.get_context().autocommit_block():
    op.drop_index("ix_workflows_name_created", table_name="workflows",
                  postgresql_concurrently=True)""",
)

# The naive unique constraint: its index is built under ACCESS EXCLUSIVE (lint: high).
BLOCKING_UNIQUE = (
    """with op.batch_alter_table("workflows") as batch:
    batch.create_unique_constraint("uq_workflows_name", ["name"])""",
    """with op.batch_alter_table("workflows") as batch:
    batch.drop_constraint("uq_workflows_name", type_="unique")""",
)


def add_revision(
    versions: Path,
    revision: str,
    body: tuple[str, str],
    *,
    down: str | None = None,
    message: str | None = None,
) -> str:
    """Write a revision on top of ``down`` (default: the current head); return its id."""
    down = down or heads()[0]
    upgrade, downgrade = (textwrap.indent(part, "    ") for part in body)
    text = TEMPLATE.format(
        message=message or f"test revision {revision}",
        revision=revision,
        down=down,
        upgrade=upgrade,
        downgrade=downgrade,
    )
    (versions / f"2099_01_01_000000_{revision}_test.py").write_text(text)
    return revision
