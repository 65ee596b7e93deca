"""Safe, orchestrated Alembic migrations for AutoPR Engine, as Prefect flows."""
