"""Everything the migration flows raise on purpose, rooted at ``MigrationError``.

    MigrationError
     +-- ConfigurationError      bad input: unknown target, malformed URL, bad revision
     +-- PreflightRefused        the target is not in a state we may migrate
     |    +-- DatabaseUnreachable
     |    +-- UnfinishedRun
     +-- LockUnavailable         another run holds the target's migration lock
     |    +-- LockLost           a lock this run held is no longer its own
     +-- OutsideMigrationWindow  no window fits the upgrade within the wait limit
     +-- ApprovalRejected
     +-- ApprovalExpired         nobody decided before the deadline
     +-- BackupFailed
     +-- UpgradeFailed
     |    +-- LockTimeout        a statement waited longer than lock_timeout
     +-- HealthCheckFailed
     +-- DowngradeFailed
     |    +-- DowngradeLockTimeout
     +-- RestoreFailed

Every message says what happened and then what to do, and never holds a password.
"""

from __future__ import annotations


class MigrationError(Exception):
    """Root of every error the migration flows raise on purpose."""

    exit_code = 1


class ConfigurationError(MigrationError, ValueError):
    """Bad input (target, URL, revision, policy); nothing was touched."""

    exit_code = 2


class PreflightRefused(MigrationError):
    """The target is not in a state we may migrate; nothing was touched."""

    exit_code = 3


class DatabaseUnreachable(PreflightRefused):
    """The target database did not answer within the connect timeout."""


class UnfinishedRun(PreflightRefused):
    """The ledger holds a run that never finished: a crashed worker, a killed process."""


class LockUnavailable(MigrationError):
    """Another run holds the target's migration lock, and waiting for it timed out."""

    exit_code = 4


class LockLost(LockUnavailable):
    """A lock this run took is no longer its own: its session died, or its lease lapsed."""


class OutsideMigrationWindow(MigrationError):
    """No migration window fits the upgrade within the policy's wait limit; nothing changed."""


class ApprovalRejected(MigrationError):
    """An operator rejected the migration; nothing was touched."""


class ApprovalExpired(MigrationError):
    """Nobody decided before the approval deadline; nothing was touched."""


class BackupFailed(MigrationError):
    """The backup could not be taken or verified; nothing was touched."""


class UpgradeFailed(MigrationError):
    """A revision failed while upgrading."""


class LockTimeout(UpgradeFailed):
    """A statement waited longer than ``lock_timeout`` for a table lock (retried)."""


class HealthCheckFailed(MigrationError):
    """The application did not become healthy at the expected revision in time."""


class DowngradeFailed(MigrationError):
    """Alembic could not downgrade back to the starting revision."""


class DowngradeLockTimeout(DowngradeFailed):
    """A downgrade statement waited longer than ``lock_timeout`` (retried)."""


class RestoreFailed(MigrationError):
    """The backup could not be restored or did not verify."""


def describe(exc: BaseException) -> str:
    """``Type: first line`` of an exception (the driver's own error for database errors), masked."""
    from autopr_migrate.masking import mask_secrets

    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {mask_secrets(lines[0]) if lines else ''}".rstrip(": ")
