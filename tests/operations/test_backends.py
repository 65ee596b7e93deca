"""The dialect seam, on each engine: dump and restore, scratch copies, the migration lock."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from autopr_migrate.backends.connections import connect, row_counts
from autopr_migrate.backends.registry import backend_for
from autopr_migrate.errors import LockUnavailable
from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.targets.targets import resolve_target
from tests.flows.helpers import at_head_with_rows, checksums
from tests.support.alembic_run import revision_of

pytestmark = pytest.mark.both_dialects  # the point of the seam: each engine does it its own way


def _dump(target, directory: Path):
    def path_for(revision, fmt):
        return directory / f"dump-{revision}.{fmt}"

    return backend_for(target).dump(target, BackupPolicy(format="custom"), path_for, 0)


def test_a_dump_restores_the_rows_and_the_revision(migration_target, tmp_path):
    engine = at_head_with_rows(migration_target.engine())
    before, revision = checksums(engine), revision_of(engine)
    target = resolve_target("app")
    dump = _dump(target, tmp_path)
    assert dump.revision == revision and dump.row_counts["workflows"] > 0
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM workflow_executions"))
        connection.execute(text("CREATE TABLE added_later (id integer)"))
    backend = backend_for(target)
    dropped = backend.drop_objects_not_in(target, dump.path)
    backend.restore(target, dump.path, jobs=1)
    assert checksums(engine) == before and revision_of(engine) == revision
    with connect(target) as connection:
        assert "added_later" not in row_counts(connection)
    assert dropped in ([], ["table public.added_later"])  # SQLite replaces the whole file


def test_a_scratch_copy_holds_the_rows_and_is_gone_afterwards(migration_target, tmp_path):
    at_head_with_rows(migration_target.engine())
    target = resolve_target("app")
    dump = _dump(target, tmp_path)
    backend = backend_for(target)
    with backend.scratch_copy(
        target, dump.path, jobs=1, directory=tmp_path, prefix="autopr_seam_"
    ) as copy:
        assert copy.url != target.url
        with connect(copy) as connection:
            assert row_counts(connection) == dump.row_counts
    with connect(target) as connection:
        assert backend.size(connection, target) > 0
        if connection.dialect.name == "postgresql":
            left = connection.execute(
                text("SELECT count(*) FROM pg_database WHERE datname = :name"),
                {"name": copy.url.database},
            ).scalar()
            assert left == 0


def test_the_migration_lock_keeps_a_second_holder_out(migration_target):
    at_head_with_rows(migration_target.engine())
    target = resolve_target("app")
    backend = backend_for(target)
    with connect(target) as first, connect(target) as second:
        assert backend.lock_is_free(second, target)
        with backend.database_lock(first, target, wait_seconds=1) as held:
            assert held.still_held() and not backend.lock_is_free(second, target)
            with (
                pytest.raises(LockUnavailable, match="migration lock"),
                backend.database_lock(second, target, wait_seconds=0.5),
            ):
                pass
            backend.ensure_locked(first, target)  # still ours: nothing to take again
        assert backend.lock_is_free(second, target)
