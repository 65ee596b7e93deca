"""A target's backup directory: made private when this tool creates it, never changed after.

An operator's existing directory keeps its permissions (a run refused before its backup leaves
nothing different behind); every backup file in it is written readable by its owner only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from autopr_migrate.errors import ConfigurationError
from autopr_migrate.targets.targets import Target


def ready_backup_directory(target: Target) -> Path:
    """The directory, created (0700) if it does not exist, and proven writable.

    Raises:
        ConfigurationError: it is a file, or it cannot be created or written; the message names
            the variable that put it there.
    """
    directory = target.backup_dir
    where = f"the backup directory {directory} of target {target.name!r}"
    blocker = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        what = "is a file" if blocker == directory else f"lies under {blocker}, which is a file"
        raise ConfigurationError(
            f"{where} {what}, not a directory: move the file away, or {target.backup_dir_advice}"
        )
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ConfigurationError(
            f"{where} is not writable ({exc.strerror}); fix its permissions, or "
            f"{target.backup_dir_advice}"
        ) from None
    return directory
