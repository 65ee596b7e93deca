"""demo: rename workflows.description (the running application still reads it)

Kept out of the real history: `make demo` adds it to a copy, so the probe fails after the
upgrade and the flow rolls it back.

Revision ID: de5000000bad
"""

import sqlalchemy as sa
from alembic import op

revision = "de5000000bad"
down_revision = "f19c7e25b0a3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.alter_column("description", new_column_name="summary", existing_type=sa.Text())


def downgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.alter_column("summary", new_column_name="description", existing_type=sa.Text())
