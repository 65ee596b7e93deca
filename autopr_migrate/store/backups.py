"""A backup on disk and what its JSON sidecar says about it: the catalog's unit.

Backups hold all the data: files are ``0600`` in a ``0700`` directory, and the sidecar (size,
sha256, revision, time, format, row counts) is written last, so a listed backup is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from autopr_migrate.backends.files import remove_path

SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class Backup:
    """A verified backup and what its sidecar says about it."""

    path: Path
    target: str
    label: str
    revision: str | None
    created_at: str
    bytes: int
    sha256: str
    seconds: float
    format: str
    compression: int | None
    jobs: int
    row_counts: dict[str, int] = field(default_factory=dict)

    @property
    def sidecar(self) -> Path:
        return sidecar_path(self.path)

    def to_json(self) -> dict:
        data = asdict(self)
        data["path"] = self.path.name
        return data


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def load_backup(path: Path) -> Backup:
    """Read a backup's sidecar."""
    data = json.loads(sidecar_path(path).read_text())
    data["path"] = path
    return Backup(**data)


def digest(path: Path) -> str:
    """sha256 of a file, or of a directory's files (names and contents, in name order)."""
    total = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for item in files:
        if path.is_dir():
            total.update(item.relative_to(path).as_posix().encode() + b"\0")
        with item.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                total.update(chunk)
    return total.hexdigest()


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def seal(backup: Backup, started: float) -> Backup:
    """Make a written backup private, measure and hash it, then write its sidecar."""
    _private(backup.path)
    finished = replace(
        backup,
        bytes=size_of(backup.path),
        sha256=digest(backup.path),
        seconds=round(time.monotonic() - started, 3),
    )
    sidecar = finished.sidecar
    descriptor = os.open(sidecar, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(finished.to_json(), handle, indent=2, sort_keys=True)
    return finished


def _private(path: Path) -> None:
    if path.is_dir():
        os.chmod(path, 0o700)
        for item in path.rglob("*"):
            os.chmod(item, 0o700 if item.is_dir() else 0o600)
    else:
        os.chmod(path, 0o600)


def remove_backup(backup: Backup) -> None:
    """Delete a backup and its sidecar (the sidecar last: a half-deleted backup stays listed)."""
    remove_path(backup.path)
    backup.sidecar.unlink(missing_ok=True)
