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

``ExitCode`` is the whole command line's table: 0 to 3 are ``lint``'s risk levels (and
``verify``'s verdict) and nothing else, so a CI gate that reads 1 as "medium" can never mistake
an error for a level; every error has a code of its own, at 64 and above (BSD ``sysexits``
where one fits).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What ``autopr-migrate`` exits with; each code one meaning, documented in docs/cli.md."""

    OK = 0  # done; lint: risk low; verify: every check passed
    MEDIUM = 1  # lint only
    HIGH = 2  # lint only
    CRITICAL = 3  # lint; verify: a check failed
    USAGE = 64  # an unknown option, a bad argument or value, an unknown target or revision
    DATA = 65  # the input is not text, not PostgreSQL SQL, holds no statement; unreadable history
    NO_INPUT = 66  # an input file cannot be read
    UNAVAILABLE = 69  # a database or the Prefect API does not answer
    INTERNAL = 70  # an error in autopr-migrate itself (or it could not start)
    BUSY = 75  # another run or session holds the migration lock: try again later
    REFUSED = 80  # the target is not in a state to act on (preflight refused)
    NOT_TAKEN = 81  # a paused run did not take the answer
    FAILED = 82  # an operation started and failed (the message says what state it left)
    CHECK_FAILED = 83  # a check found a problem (restore-test, status of an unknown revision)
    NOTHING_DONE = 84  # declined at a prompt, or no choice given without a terminal
    INTERRUPTED = 130


class MigrationError(Exception):
    """Root of every error the migration flows raise on purpose."""

    exit_code = ExitCode.FAILED


class ConfigurationError(MigrationError, ValueError):
    """Bad input (target, URL, revision, policy); nothing was touched."""

    exit_code = ExitCode.USAGE


class PreflightRefused(MigrationError):
    """The target is not in a state we may migrate; nothing was touched."""

    exit_code = ExitCode.REFUSED


class DatabaseUnreachable(PreflightRefused):
    """The target database did not answer within the connect timeout."""

    exit_code = ExitCode.UNAVAILABLE


class UnfinishedRun(PreflightRefused):
    """The ledger holds a run that never finished: a crashed worker, a killed process."""


class LockUnavailable(MigrationError):
    """Another run holds the target's migration lock, and waiting for it timed out."""

    exit_code = ExitCode.BUSY


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


class ModelDrift(MigrationError):
    """The models and the database at head differ: a revision is missing."""


class RenderFailed(MigrationError):
    """Alembic could not render a plan's SQL offline."""


class OfflineRenderUnsupported(RenderFailed):
    """The plan needs the live schema to render (SQLite batch mode copying a table)."""


class RestoreFailed(MigrationError):
    """The backup could not be restored or did not verify."""


def describe(exc: BaseException) -> str:
    """``Type: first line`` of an exception (the driver's own error for database errors), masked."""
    from autopr_migrate.masking import mask_secrets

    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {mask_secrets(lines[0]) if lines else ''}".rstrip(": ")
