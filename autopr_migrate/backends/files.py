"""Files a backend writes: one file, or a directory of them (PostgreSQL's directory format)."""

from __future__ import annotations

from pathlib import Path


def remove_path(path: Path) -> None:
    """A dump file, or a directory-format dump with everything in it."""
    if path.is_dir():
        for item in sorted(path.rglob("*"), reverse=True):
            item.rmdir() if item.is_dir() else item.unlink()
        path.rmdir()
    elif path.exists():
        path.unlink()
