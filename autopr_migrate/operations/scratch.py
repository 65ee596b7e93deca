"""Throwaway copies of a target made from one of its backups: rehearsals and restore tests.

PostgreSQL: a new database on the same server, named ``<prefix><target>_<random>``, always
dropped. SQLite: a copy of the backup file in a directory the caller owns.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from autopr_migrate.backends.registry import backend_for
from autopr_migrate.store.backups import Backup
from autopr_migrate.targets.targets import Target


def scratch_copy(
    target: Target, dump: Backup, directory: Path, *, prefix: str
) -> AbstractContextManager[Target]:
    """The target, pointed at a fresh copy of ``dump``."""
    jobs = dump.jobs if dump.format == "directory" else 1
    return backend_for(target).scratch_copy(
        target, dump.path, jobs=jobs, directory=directory, prefix=prefix
    )
