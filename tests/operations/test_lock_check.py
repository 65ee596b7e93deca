"""The analyzer's predicted locks against the ones PostgreSQL held, as the sampler saw them."""

from __future__ import annotations

from datetime import UTC, datetime

from autopr_migrate.analysis.lint import lint_sql
from autopr_migrate.backends.lock_sampler import OurStatement
from autopr_migrate.operations.lock_check import compare_locks


def test_a_lock_on_a_table_the_plan_creates_is_no_mismatch_whenever_it_is_first_seen() -> None:
    """Alembic creates its version table in the migration's transaction; sampled first while
    the session already shows COMMIT, the lock is still the CREATE's, which no one can wait on."""
    committing = OurStatement(
        pid=1,
        query="COMMIT",
        started=datetime.now(UTC),
        first_seen=1.0,
        last_seen=1.0,
        held={"alembic_version": {"AccessExclusiveLock"}, "orders": {"ShareLock"}},
        acquired={("alembic_version", "AccessExclusiveLock"), ("orders", "ShareLock")},
        running_samples=1,
    )
    creates = lint_sql(
        "CREATE TABLE alembic_version (version_num varchar(32) NOT NULL);"
        "CREATE INDEX ix ON orders (note);"
        "INSERT INTO alembic_version (version_num) VALUES ('c1');",
        squawk=False,
    )
    (judged,) = compare_locks([committing], creates)
    assert judged.mismatches == []
    existing = lint_sql("UPDATE alembic_version SET version_num = 'c1';", squawk=False)
    (judged,) = compare_locks([committing], existing)
    assert [m.message for m in judged.mismatches] == [
        "`COMMIT`: PostgreSQL held ACCESS EXCLUSIVE on alembic_version; the analyzer predicted "
        "ROW EXCLUSIVE",
        "`COMMIT`: PostgreSQL held SHARE on orders; the analyzer predicted no lock",
    ]
