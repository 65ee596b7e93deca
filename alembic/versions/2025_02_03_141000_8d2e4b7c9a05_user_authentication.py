"""user authentication

Purpose: users can sign in: a password hash, an active flag and the last sign-in time on
users, and API tokens (stored as hashes) for the CLI and webhooks.
Locks: PostgreSQL adds the columns under a brief ACCESS EXCLUSIVE lock on users without a
rewrite (constant defaults); api_tokens is new. SQLite adds the columns in place.
Downgrade: drops api_tokens and the three columns: every token and password hash is lost.

Revision ID: 8d2e4b7c9a05
Revises: 3c1f0e8a2b71
Create Date: 2025-02-03 14:10:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "8d2e4b7c9a05"
down_revision: str | Sequence[str] | None = "3c1f0e8a2b71"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("password_hash", sa.String(255), nullable=True))
        batch.add_column(
            # A literal default: SQLite adds the column in place instead of copying the table.
            sa.Column("is_active", sa.Boolean(), nullable=False, server_default="1")
        )
        batch.add_column(sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_api_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])


def _users_at_this_revision() -> sa.Table:
    """The shape SQLite copies from when rendering --sql, where it cannot reflect."""
    return sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("email", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default="1"),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    copy_from = _users_at_this_revision() if context.is_offline_mode() else None
    with op.batch_alter_table("users", copy_from=copy_from) as batch:
        batch.drop_column("last_login_at")
        batch.drop_column("is_active")
        batch.drop_column("password_hash")
