"""index workflows.status

Purpose: the dashboard and the scheduler filter workflows by status.
Locks: PostgreSQL builds the index CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go
on) outside any transaction (safe.create_index: an INVALID leftover of a failed build is dropped
and built again). SQLite builds a plain index (the database is locked meanwhile).
Downgrade: drops the index (CONCURRENTLY on PostgreSQL); no data is lost.

Revision ID: e5c8f2a1d934
Revises: b47a91d3e6f2
Create Date: 2025-04-02 08:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from autopr_migrate.ops import safe

revision: str = "e5c8f2a1d934"
down_revision: str | Sequence[str] | None = "b47a91d3e6f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
equivalent_sha256 = {
    "e01ebeef8f8832dfe0ac25b75df8550f77152628fffaf1c52bc1424cee155543": (
        "the hand-written CREATE INDEX CONCURRENTLY it ran builds the index safe.create_index "
        "builds (tests/migrations/test_autopr_history.py compares the schemas)"
    ),
}

INDEX = "ix_workflows_status"


def upgrade() -> None:
    safe.create_index(INDEX, "workflows", ["status"])


def downgrade() -> None:
    safe.drop_index(INDEX)
