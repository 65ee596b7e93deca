"""archive deprecated workflows

Purpose: the "deprecated" status is retired; such workflows become "archived". Each changed
row is recorded in workflow_status_changes (changed_by = this migration), which is how the
downgrade knows exactly which rows to put back.
Locks: no DDL. safe.backfill archives the deprecated workflows a thousand by id at a time, each
batch one statement in its own short transaction that also writes the batch's records: the
records always name exactly the rows archived. Killed half-way, the revision run again goes on
after the last finished batch (a downgrade from there does not undo those batches: run the
upgrade again, or restore). Offline (--sql) it renders the records and the update as two
statements in the revision's transaction.
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
        "the single INSERT and UPDATE it ran archived and recorded the workflows safe.backfill "
        "archives and records in batches (tests/migrations/test_autopr_history.py compares them)"
    ),
}

MARK = f"migration:{revision}"


def upgrade() -> None:
    safe.backfill(
        "workflows",
        {"status": "'archived'"},
        where="status = 'deprecated'",
        name=MARK,
        record_into="workflow_status_changes",
        record={
            "workflow_id": "id",
            "from_status": "status",
            "to_status": "'archived'",
            "changed_by": f"'{MARK}'",
        },
    )


def downgrade() -> None:
    op.execute(
        "UPDATE workflows SET status = 'deprecated' WHERE status = 'archived' AND id IN ("
        f"SELECT workflow_id FROM workflow_status_changes WHERE changed_by = '{MARK}')"
    )
    op.execute(f"DELETE FROM workflow_status_changes WHERE changed_by = '{MARK}'")
