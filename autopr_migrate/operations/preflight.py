"""Preflight: everything that must hold before a migration may touch the target.

Nothing here writes to the database. Each refusal says what is wrong and what to do.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field

from sqlalchemy import Connection

from autopr_migrate.backends.connections import connect
from autopr_migrate.backends.dialects import LongTransaction
from autopr_migrate.backends.registry import backend_for
from autopr_migrate.errors import PreflightRefused, UnfinishedRun
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.history.commands import RevisionInfo
from autopr_migrate.history.revisions import downgrade_goal, upgrade_goal
from autopr_migrate.operations.history_integrity import (
    DeclaredRewrite,
    HistoryCheck,
    HistoryProblem,
    judge_applied,
)
from autopr_migrate.operations.migrating_session import prove_migrating_session
from autopr_migrate.operations.probe import HealthSnapshot, check_health
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.store import ledger
from autopr_migrate.store.directory import ready_backup_directory
from autopr_migrate.targets.targets import Target

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreflightReport:
    """What preflight found: where the database is, where it goes, and what stands around it."""

    current: str | None
    target_revision: str | None
    revisions: list[RevisionInfo]
    database_bytes: int
    free_bytes: int
    health: HealthSnapshot
    long_transactions: list[LongTransaction] = field(default_factory=list)
    invalid_indexes: frozenset[str] = frozenset()
    operation: str = "upgrade"
    accepted_history: tuple[HistoryProblem, ...] = ()
    rewritten_history: tuple[DeclaredRewrite, ...] = ()
    migrating_session: str = ""

    @property
    def nothing_to_do(self) -> bool:
        return self.current == self.target_revision

    @property
    def application_expected(self) -> bool:
        """False only for an empty database whose application does not answer yet."""
        return self.health.healthy or self.current is not None or self.health.answered


def preflight(
    target: Target,
    revision: str,
    policy: MigrationPolicy,
    *,
    log: logging.Logger | logging.LoggerAdapter = LOG,
) -> PreflightReport:
    """Check the target and resolve ``revision``; raise a ``MigrationError`` to refuse."""
    checks = policy.preflight
    backend = backend_for(target)
    with connect(target, connect_timeout=checks.connect_timeout_seconds) as connection:
        current = alembic_ops.current(target.project, connection)
        log.info("target %s (%s) is at %s", target.name, target.masked_url, current or "base")
        target_revision = upgrade_goal(target.project, revision, current)
        if current == target_revision:
            log.info("already at %s: nothing to do", target_revision)
            return PreflightReport(current, target_revision, [], 0, 0, HealthSnapshot(200, "ok"))
        refuse_unfinished_runs(connection, target)
        history = refuse_changed_history(
            connection, target, policy.risk.changed_history_reason, log=log
        )
        session = prove_migrating_session(target, connection, policy.lock)
        log.info("the project's env.py %s", session.line())
        size = backend.size(connection, target)
        long_transactions = backend.long_transactions(connection, checks.long_transaction_seconds)
        broken_indexes = frozenset(backend.invalid_indexes(connection))
    _refuse_long_transactions(long_transactions, checks.max_transaction_seconds)
    free = check_backup_directory(target, size, checks.free_space_factor)
    health = _check_health_before(target, current)
    revisions = alembic_ops.pending(target.project, current, target_revision)
    log.info(
        "%d revision(s) to apply: %s -> %s; database %d bytes, %d bytes free for the backup",
        len(revisions),
        current or "base",
        target_revision,
        size,
        free,
    )
    return PreflightReport(
        current,
        target_revision,
        revisions,
        size,
        free,
        health,
        long_transactions,
        broken_indexes,
        accepted_history=tuple(history.problems),
        rewritten_history=tuple(history.rewrites),
        migrating_session=session.line(),
    )


def refuse_unfinished_runs(connection: Connection, target: Target) -> None:
    rows = ledger.unfinished(connection)
    connection.rollback()
    if not rows:
        return
    row = rows[-1]
    raise UnfinishedRun(
        f"ledger row {row.id} shows a run that never finished: flow run "
        f"{row.flow_run_name or row.flow_run_id} started {row.started_at:%Y-%m-%d %H:%M:%S} UTC "
        f"going {row.from_revision or 'base'} -> {row.to_revision}, backup "
        f"{row.backup_path or 'none'}. Check the database's revision and health, restore that "
        f"backup if it is broken, then mark the row: `autopr-migrate resolve --target "
        f"{target.name}`"
    )


def refuse_changed_history(
    connection: Connection,
    target: Target,
    override_reason: str,
    *,
    log: logging.Logger | logging.LoggerAdapter = LOG,
) -> HistoryCheck:
    """Refuse when applied revision files changed, unless the revision declares the text that
    ran equivalent or the policy accepts the change with a reason; what was accepted."""
    history = judge_applied(target.project, connection)
    for rewrite in history.rewrites:
        log.info("history: %s", rewrite.line())
    problems = history.problems
    if not problems:
        return history
    listed = "; ".join(problem.line() for problem in problems)
    if not override_reason.strip() or any(p.current_sha256 is None for p in problems):
        raise PreflightRefused(
            f"revision files this database already ran are not what ran: {listed}. Restore "
            f"them from version control (`git diff`/`git log -- alembic/versions`) and deploy "
            f"that; a fix belongs in a new revision. A rewrite that does the same declares the "
            f"sha256 of the text that ran in the revision's equivalent_sha256; a harmless change "
            f"(a comment) can run with policy.risk.changed_history_reason saying why"
        )
    log.warning(
        "migrating %s although applied revision files changed (%s): %s",
        target.name,
        listed,
        override_reason,
    )
    return history


def _refuse_long_transactions(found: list[LongTransaction], limit: float) -> None:
    blocking = [t for t in found if t.seconds > limit]
    if blocking:
        oldest = blocking[0]
        raise PreflightRefused(
            f"{len(blocking)} transaction(s) have been open longer than {limit:g} s (oldest: pid "
            f"{oldest.pid}, {oldest.seconds:.0f} s, {oldest.state}, {oldest.application!r}); "
            f"DDL would queue behind them and block every query. End them "
            f"(pg_terminate_backend) or raise policy.preflight.max_transaction_seconds"
        )


def check_backup_directory(target: Target, database_bytes: int, factor: float) -> int:
    """Free bytes in the backup directory, which must hold ``factor`` x the database."""
    directory = ready_backup_directory(target)
    free = shutil.disk_usage(directory).free
    needed = int(database_bytes * factor)
    if free < needed:
        raise PreflightRefused(
            f"the backup directory {directory} has {free} bytes free; a backup of this "
            f"{database_bytes}-byte database needs about {needed}. Free some space first"
        )
    return free


def _check_health_before(target: Target, current: str | None) -> HealthSnapshot:
    snapshot = check_health(target.health_url, timeout=5)
    if snapshot.healthy or current is None:
        return snapshot
    raise PreflightRefused(
        f"the application is not healthy before the migration ({snapshot.reason}); a sick "
        f"system is not migrated: make {target.masked_health_url} answer 200 first"
    )


def downgrade_preflight(
    target: Target,
    revision: str,
    *,
    confirm_base: bool,
    policy: MigrationPolicy,
    log: logging.Logger | logging.LoggerAdapter = LOG,
) -> PreflightReport:
    """Where the database is, where ``revision`` (``-1``, an id, a prefix, ``base``) takes it.

    The application is checked but not required healthy: it may be why we go back.
    """
    with connect(target, connect_timeout=policy.preflight.connect_timeout_seconds) as connection:
        current = alembic_ops.current(target.project, connection)
        goal = downgrade_goal(target.project, revision, current, confirm_base=confirm_base)
        if goal == current:
            health = check_health(target.health_url, timeout=5)
            return PreflightReport(current, goal, [], 0, 0, health, operation="downgrade")
        refuse_unfinished_runs(connection, target)
        # A downgrade runs the applied revisions' own code: it must be the code that ran.
        history = refuse_changed_history(
            connection, target, policy.risk.changed_history_reason, log=log
        )
        session = prove_migrating_session(target, connection, policy.lock)
        backend = backend_for(target)
        size = backend.size(connection, target)
        broken_indexes = frozenset(backend.invalid_indexes(connection))
    free = check_backup_directory(target, size, policy.preflight.free_space_factor)
    health = check_health(target.health_url, timeout=5)
    undone = alembic_ops.undone_by_downgrade(target.project, current, goal)
    state = "healthy" if health.healthy else f"not healthy ({health.reason})"
    log.info(
        "downgrade %s -> %s undoes %d revision(s); the application is %s",
        current,
        goal or "base",
        len(undone),
        state,
    )
    return PreflightReport(
        current,
        goal,
        undone,
        size,
        free,
        health,
        [],
        broken_indexes,
        operation="downgrade",
        accepted_history=tuple(history.problems),
        rewritten_history=tuple(history.rewrites),
        migrating_session=session.line(),
    )
