"""The restore sequence: restore a backup, put the run's ledger row back, probe the application.

One sequence for every way a backup comes back: the last resort of a failed migration, an
operator's restore, a failed downgrade, and ``resolve --restore`` after a crash. What happened
is returned typed; callers put it into words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from autopr_migrate.errors import BackupFailed, MigrationError, describe
from autopr_migrate.operations.restore import Restored
from autopr_migrate.operations.steps import Steps
from autopr_migrate.operations.timeline import Timeline
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.store.backups import Backup
from autopr_migrate.targets.targets import Target


class Stage(StrEnum):
    """Where a restore sequence stopped."""

    DUMP = "dump"  # the current state could not be kept: nothing was restored
    RESTORE = "restore"  # the restore itself failed
    PROBE = "probe"  # restored, but the application is not healthy on it


@dataclass(frozen=True)
class Recovery:
    backup: Backup
    restored: Restored | None = None
    stopped_at: Stage | None = None
    problem: str | None = None
    error: Exception | None = None  # what stopped it, for a caller that answers by its type

    @property
    def succeeded(self) -> bool:
        return self.stopped_at is None


def problem_of(exc: BaseException) -> str:
    """Our errors say what happened and what to do; anything else is named with its type."""
    return str(exc) if isinstance(exc, MigrationError) else describe(exc)


def restore_and_probe(
    steps: Steps,
    timeline: Timeline,
    target: Target,
    backup: Backup,
    policy: MigrationPolicy,
    *,
    rewrite_ledger: Callable[[], None],
    require_dump: bool = False,
    application_expected: bool = True,
) -> Recovery:
    """Restore ``backup``, re-write the ledger row it rewound, and probe at its revision.

    Never raises for a failure of its own steps: the returned ``Recovery`` says where it stopped.
    """
    try:
        with timeline.step("restore"):
            restored = steps.restore(target, backup, policy.backup, require_dump=require_dump)
        rewrite_ledger()
    except BackupFailed as exc:  # with require_dump: the current state could not be kept
        return Recovery(backup, stopped_at=Stage.DUMP, problem=str(exc), error=exc)
    except Exception as exc:  # whatever broke, the caller decides what it means
        return Recovery(backup, stopped_at=Stage.RESTORE, problem=problem_of(exc), error=exc)
    try:
        with timeline.step("probe after restore"):
            steps.probe(
                target,
                backup.revision,
                policy.probe,
                application_expected=application_expected,
                after="restore",
            )
    except Exception as exc:  # a probe that cannot prove health counts as unhealthy
        return Recovery(backup, restored, Stage.PROBE, problem_of(exc), exc)
    return Recovery(backup, restored)
