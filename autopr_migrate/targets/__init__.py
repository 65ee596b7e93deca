"""Named databases, their URLs and secrets, and the Alembic project their history lives in."""
