"""autopr_migrate: safe, orchestrated Alembic migrations run as Prefect flows.

Layers, lowest first (each imports only from those below; ``.importlinter`` checks it):
masking, clock -> errors, model -> policy -> targets -> history | backends -> store | analysis
-> operations -> orchestration -> flows -> cli. See docs/architecture.md.
"""
