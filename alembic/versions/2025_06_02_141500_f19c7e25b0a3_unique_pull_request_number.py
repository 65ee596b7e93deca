"""unique pull request number per repository

Purpose: a pull request's number is unique within its repository; webhooks upsert on it.
Locks: PostgreSQL builds the unique index CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and
writes go on), then makes it the constraint (USING INDEX: a moment's ACCESS EXCLUSIVE), through
safe.add_unique. SQLite recreates the table (batch mode). The upgrade fails, leaving no index
behind, if duplicates exist: remove them first.
Downgrade: drops the constraint (a moment's ACCESS EXCLUSIVE); no data is lost.

Revision ID: f19c7e25b0a3
Revises: 6a0d3f9b2c48
Create Date: 2025-06-02 14:15:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from autopr_migrate.ops import safe

revision: str = "f19c7e25b0a3"
down_revision: str | Sequence[str] | None = "6a0d3f9b2c48"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
equivalent_sha256 = {
    "9afc9cfde8813a29c6a7cd6da75d331dbba91ea8411cbfbc8ed7a67f73861087": (
        "the ADD CONSTRAINT ... UNIQUE it ran makes the constraint and index safe.add_unique "
        "makes (tests/migrations/test_autopr_history.py compares the schemas)"
    ),
    "18ec2d1ed7ada01eab56abe3a96f2eeb75fde93975260cf1530054b102aed51d": (
        "an earlier text of the same ADD CONSTRAINT ... UNIQUE whose docstring said the build "
        "held SHARE: the same constraint and index"
    ),
}

UNIQUE = "uq_pull_requests_repository_id_number"


def _pull_requests_at_this_revision(*, unique: bool) -> sa.Table:
    """The shape SQLite copies from when rendering --sql, where it cannot reflect."""
    constraints = [sa.UniqueConstraint("repository_id", "number", name=UNIQUE)] if unique else []
    return sa.Table(
        "pull_requests",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(20), nullable=False, server_default="open"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name="fk_pull_requests_repository_id_repositories",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name="fk_pull_requests_author_id_users",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_pull_requests"),
        *constraints,
    )


def _copy_from(*, unique: bool) -> sa.Table | None:
    return _pull_requests_at_this_revision(unique=unique) if context.is_offline_mode() else None


def upgrade() -> None:
    safe.add_unique(
        UNIQUE, "pull_requests", ["repository_id", "number"], copy_from=_copy_from(unique=False)
    )


def downgrade() -> None:
    with op.batch_alter_table("pull_requests", copy_from=_copy_from(unique=True)) as batch:
        batch.drop_constraint(UNIQUE, type_="unique")
