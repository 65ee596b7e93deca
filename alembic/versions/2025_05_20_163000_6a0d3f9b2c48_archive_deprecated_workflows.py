"""archive deprecated workflows

Purpose: the "deprecated" status is retired; such workflows become "archived". Each changed
row is recorded in workflow_status_changes (changed_by = this migration), which is how the
downgrade knows exactly which rows to put back.
Locks: no DDL. The records are written first (one statement, no lock on workflows), then the
recorded workflows are archived by safe.backfill, a thousand by id at a time, each batch in
its own short transaction; killed half-way, the revision run again goes on after the last
finished batch and records nothing twice.
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

from autopr_migrate.ops import safe

revision: str = "6a0d3f9b2c48"
down_revision: str | Sequence[str] | None = "e5c8f2a1d934"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
equivalent_sha256 = {
    "9dc047fe8a6740edb7773314d95ab0bf6ac3992ee0cd64b305e2ac68aafc7d4b": (
        "the single UPDATE it ran archived the workflows safe.backfill archives in batches, "
        "with the same records (tests/migrations/test_autopr_history.py compares the tables)"
    ),
}

MARK = f"migration:{revision}"
RECORDED = f"SELECT workflow_id FROM workflow_status_changes WHERE changed_by = '{MARK}'"


def upgrade() -> None:
    op.execute(
        "INSERT INTO workflow_status_changes (workflow_id, from_status, to_status, changed_by) "
        f"SELECT id, 'deprecated', 'archived', '{MARK}' FROM workflows w "
        "WHERE status = 'deprecated' AND NOT EXISTS (SELECT 1 FROM workflow_status_changes c "
        f"WHERE c.workflow_id = w.id AND c.changed_by = '{MARK}')"
    )
    safe.backfill(
        "workflows",
        {"status": "'archived'"},
        where=f"status = 'deprecated' AND id IN ({RECORDED})",
        name=MARK,
    )


def downgrade() -> None:
    op.execute(
        "UPDATE workflows SET status = 'deprecated' WHERE status = 'archived' AND id IN ("
        f"{RECORDED})"
    )
    op.execute(f"DELETE FROM workflow_status_changes WHERE changed_by = '{MARK}'")
