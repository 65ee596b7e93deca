"""The only Alembic caller: resolve, render, upgrade and downgrade, drift."""
