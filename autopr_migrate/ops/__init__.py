"""Operations an Alembic revision calls to change a live PostgreSQL schema safely.

``from autopr_migrate.ops import safe``: each operation runs the safe pattern (concurrent index
builds, constraints added ``NOT VALID`` then validated, ``SET NOT NULL`` through a validated
check, batched backfills), one sub-step at a time outside the revision's transaction, each with
the lock and statement timeouts of its lock level, retried on a lock timeout with backoff, and
idempotent: a revision re-run after a crash at any sub-step completes without error and without
duplicates. Offline (``--sql``) it renders the statements it would run; on SQLite it does the
plain operation.
"""
