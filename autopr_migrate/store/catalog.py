"""A target's backups as an operator sees them: when, at which revision, and still intact?"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from autopr_migrate.errors import ConfigurationError
from autopr_migrate.policy.inputs import shown
from autopr_migrate.store.backups import SIDECAR_SUFFIX, Backup, digest, load_backup
from autopr_migrate.targets.targets import Target

# What "the newest backup" means when none is named: never a pre-restore dump, which holds the
# state a restore replaced (often a broken one); name it to restore it.
DEFAULT_LABELS = {"pre-upgrade", "pre-downgrade", "manual"}


@dataclass(frozen=True)
class Listed:
    backup: Backup

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.backup.created_at)

    def verify(self) -> str:
        """``verified``, ``missing`` or ``MISMATCH`` (the file changed since it was taken)."""
        if not self.backup.path.exists():
            return "missing"
        return "verified" if digest(self.backup.path) == self.backup.sha256 else "MISMATCH"


def list_backups(target: Target) -> list[Listed]:
    """The target's backups (readable sidecars in its backup directory), oldest first."""
    if not target.backup_dir.is_dir():
        return []
    found = []
    for sidecar in target.backup_dir.glob(f"*{SIDECAR_SUFFIX}"):
        data_path = sidecar.with_name(sidecar.name.removesuffix(SIDECAR_SUFFIX))
        try:
            backup = load_backup(data_path)
        except (OSError, ValueError, TypeError, json.JSONDecodeError):
            continue
        if backup.target == target.name:  # a shared directory holds other targets' too
            found.append(Listed(backup))
    # Sidecar times are to the second; the sidecar's own write time orders ties.
    return sorted(found, key=lambda item: (item.created, _written_ns(item.backup)))


def _written_ns(backup: Backup) -> int:
    try:
        return backup.sidecar.stat().st_mtime_ns
    except OSError:
        return 0


def find_backup(target: Target, name: str = "") -> Backup:
    """The named backup (a file name in the backup directory), or the newest one taken before
    an upgrade or a downgrade, or by hand.

    Raises:
        ConfigurationError: no such backup.
    """
    listed = [item for item in list_backups(target) if item.backup.label in DEFAULT_LABELS]
    if name:
        wanted = [item for item in list_backups(target) if item.backup.path.name == Path(name).name]
        if not wanted:
            raise ConfigurationError(
                f"target {target.name!r} has no backup named {shown(name)} in {target.backup_dir}; "
                f"`autopr-migrate backups --target {target.name}` lists them"
            )
        return wanted[0].backup
    if not listed:
        raise ConfigurationError(f"target {target.name!r} has no backups in {target.backup_dir}")
    return listed[-1].backup


def age_hours(item: Listed, now: datetime | None = None) -> float:
    now = now or datetime.now(UTC)
    return (now - item.created).total_seconds() / 3600
