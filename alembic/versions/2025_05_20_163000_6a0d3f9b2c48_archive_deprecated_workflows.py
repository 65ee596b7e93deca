"""archive deprecated workflows

Purpose: the "deprecated" status is retired; such workflows become "archived". Each changed
row is recorded in workflow_status_changes (changed_by = this migration), which is how the
downgrade knows exactly which rows to put back.
Locks: row locks on the deprecated workflows only; no DDL.
Downgrade: sets back to "deprecated" exactly the workflows this migration archived that are
still archived, and removes its records. Workflows archived before it, or by the application
after it, are left alone.

Revision ID: 6a0d3f9b2c48
Revises: e5c8f2a1d934
Create Date: 2025-05-20 16:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "6a0d3f9b2c48"
down_revision: str | Sequence[str] | None = "e5c8f2a1d934"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MARK = f"migration:{revision}"


def upgrade() -> None:
    op.execute(
        "INSERT INTO workflow_status_changes (workflow_id, from_status, to_status, changed_by) "
        f"SELECT id, 'deprecated', 'archived', '{MARK}' FROM workflows "
        "WHERE status = 'deprecated'"
    )
    op.execute(
        "UPDATE workflows SET status = 'archived' WHERE id IN ("
        f"SELECT workflow_id FROM workflow_status_changes WHERE changed_by = '{MARK}')"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE workflows SET status = 'deprecated' WHERE status = 'archived' AND id IN ("
        f"SELECT workflow_id FROM workflow_status_changes WHERE changed_by = '{MARK}')"
    )
    op.execute(f"DELETE FROM workflow_status_changes WHERE changed_by = '{MARK}'")
