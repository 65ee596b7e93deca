"""${message}

Purpose: <what this changes for the application, and why>
Locks: <which tables are locked, in which mode, for how long on a large table>
Downgrade: <what the downgrade restores, and what it cannot (dropped data, backfills)>

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
# On a table in use, prefer the safe operations (docs/safe-operations.md): from
# autopr_migrate.ops import safe; safe.create_index, safe.add_foreign_key, safe.add_check,
# safe.set_not_null, safe.add_unique, safe.add_column, safe.backfill, safe.drop_index.
revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
