"""Undoing an upgrade with Alembic: the first way back, before any backup is restored."""

from __future__ import annotations

import logging

from sqlalchemy import Connection

from autopr_migrate.backends.connections import connect
from autopr_migrate.backends.session import (
    alembic_logs_to,
    end_transaction,
    inherited_settings,
    is_lock_timeout,
    timeouts,
)
from autopr_migrate.errors import DowngradeFailed, DowngradeLockTimeout, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.operations.queue_guard import no_queue_behind_long_transactions
from autopr_migrate.policy.parameters import LockPolicy
from autopr_migrate.targets.project import Project
from autopr_migrate.targets.targets import Target

LOG = logging.getLogger(__name__)


def downgrade_to(
    project: Project,
    connection: Connection,
    revision: str | None,
    policy: LockPolicy,
    *,
    log: logging.Logger | logging.LoggerAdapter = LOG,
) -> None:
    """Alembic downgrade to ``revision`` on the migrating connection, with the same timeouts.

    Raises:
        DowngradeLockTimeout: a statement waited too long for a lock (retried).
        DowngradeFailed: a downgrade step failed, or it stopped elsewhere.
    """
    try:
        with (
            timeouts(connection, policy),
            alembic_logs_to(log),
            no_queue_behind_long_transactions(policy),
        ):
            alembic_ops.downgrade(
                project,
                connection,
                revision,
                on_revision=lambda rev, doc, _up: log.info("downgraded %s (%s)", rev, doc),
                session=inherited_settings(policy),
            )
        reached = alembic_ops.current(project, connection)
        end_transaction(connection)
    except Exception as exc:  # any failure inside a revision's downgrade() is ours to report
        end_transaction(connection)
        kind = DowngradeLockTimeout if is_lock_timeout(exc) else DowngradeFailed
        raise kind(f"the downgrade to {revision or 'base'} failed: {describe(exc)}") from exc
    if reached != revision:
        raise DowngradeFailed(f"the downgrade stopped at {reached}, not {revision or 'base'}")
    log.info("database downgraded to %s", revision or "base")


def drop_invalid_indexes(
    target: Target, names: set[str], *, log: logging.Logger | logging.LoggerAdapter = LOG
) -> list[str]:
    """Drop indexes a failed concurrent build left INVALID (they slow every write)."""
    with connect(target) as connection:
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        for name in sorted(names):
            autocommit.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    log.info("dropped INVALID index(es) left by the failed revision: %s", ", ".join(sorted(names)))
    return sorted(names)
