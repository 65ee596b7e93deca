"""index workflows.status

Purpose: the dashboard and the scheduler filter workflows by status.
Locks: PostgreSQL builds the index CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go
on) outside any transaction; a failed build leaves an INVALID index, which this revision drops
before building again. SQLite builds a plain index (the database is locked meanwhile).
Downgrade: drops the index (CONCURRENTLY on PostgreSQL); no data is lost.

Revision ID: e5c8f2a1d934
Revises: b47a91d3e6f2
Create Date: 2025-04-02 08:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "e5c8f2a1d934"
down_revision: str | Sequence[str] | None = "b47a91d3e6f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_workflows_status"


def _on_postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    if not _on_postgresql():
        op.create_index(INDEX, "workflows", ["status"])
        return
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name="workflows", postgresql_concurrently=True, if_exists=True)
        op.create_index(INDEX, "workflows", ["status"], postgresql_concurrently=True)


def downgrade() -> None:
    if not _on_postgresql():
        op.drop_index(INDEX, table_name="workflows")
        return
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name="workflows", postgresql_concurrently=True, if_exists=True)
