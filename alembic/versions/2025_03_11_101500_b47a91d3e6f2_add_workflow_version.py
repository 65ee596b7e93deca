"""add workflows.version

Purpose: workflows carry a version number. The column arrives NOT NULL with a server default
of 1, which backfills every existing row; the default is then removed so the application
must set the version itself.
Locks: PostgreSQL 11+ adds a NOT NULL column with a constant default without rewriting the
table (brief ACCESS EXCLUSIVE on workflows); dropping the default is catalog-only. SQLite
recreates workflows (batch mode) to drop the default.
Downgrade: drops the column; every version number is lost.

Revision ID: b47a91d3e6f2
Revises: 8d2e4b7c9a05
Create Date: 2025-03-11 10:15:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "b47a91d3e6f2"
down_revision: str | Sequence[str] | None = "8d2e4b7c9a05"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _workflows_at_this_revision(*, version_default: str | None) -> sa.Table:
    """The shape SQLite copies from when rendering --sql, where it cannot reflect."""
    return sa.Table(
        "workflows",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False, server_default="active"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False, server_default=version_default),
        sa.PrimaryKeyConstraint("id", name="pk_workflows"),
        sa.UniqueConstraint("name", name="uq_workflows_name"),
    )


def _copy_from(*, version_default: str | None) -> sa.Table | None:
    if context.is_offline_mode():
        return _workflows_at_this_revision(version_default=version_default)
    return None


def upgrade() -> None:
    # A literal default: every existing row gets 1 without a table rewrite (PostgreSQL 11+).
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("workflows", copy_from=_copy_from(version_default="1")) as batch:
        batch.alter_column("version", existing_type=sa.Integer(), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("workflows", copy_from=_copy_from(version_default=None)) as batch:
        batch.drop_column("version")
