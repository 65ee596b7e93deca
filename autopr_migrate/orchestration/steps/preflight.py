"""Preflight: everything that must hold before a migration may touch the target.

Nothing here writes to the database. Each refusal says what is wrong and what to do.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Connection, text

from autopr_migrate.backends.connections import connect, invalid_indexes
from autopr_migrate.errors import ConfigurationError, PreflightRefused, UnfinishedRun
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.history.commands import RevisionInfo
from autopr_migrate.operations.history_integrity import HistoryProblem, check_applied
from autopr_migrate.orchestration.steps.probe import HealthSnapshot, check_health
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.store import ledger
from autopr_migrate.store.directory import ready_backup_directory
from autopr_migrate.targets.targets import Target


@dataclass(frozen=True)
class LongTransaction:
    pid: int
    seconds: float
    state: str
    application: str
    query: str


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

    @property
    def nothing_to_do(self) -> bool:
        return self.current == self.target_revision

    @property
    def application_expected(self) -> bool:
        """False only for an empty database whose application does not answer yet."""
        return self.health.healthy or self.current is not None or self.health.answered


@task(name="preflight", cache_policy=NO_CACHE)
def preflight(target: Target, revision: str, policy: MigrationPolicy) -> PreflightReport:
    """Check the target and resolve ``revision``; raise a ``MigrationError`` to refuse."""
    logger = get_run_logger()
    checks = policy.preflight
    with connect(target, connect_timeout=checks.connect_timeout_seconds) as connection:
        current = alembic_ops.current(connection)
        logger.info("target %s (%s) is at %s", target.name, target.masked_url, current or "base")
        target_revision = _resolve_upgrade(revision, current)
        if current == target_revision:
            logger.info("already at %s: nothing to do", target_revision)
            return PreflightReport(current, target_revision, [], 0, 0, HealthSnapshot(200, "ok"))
        refuse_unfinished_runs(connection, target)
        accepted = refuse_changed_history(connection, target, policy.risk.changed_history_reason)
        size = database_bytes(connection, target)
        long_transactions = _long_transactions(connection, checks.long_transaction_seconds)
        broken_indexes = frozenset(invalid_indexes(connection))
    _refuse_long_transactions(long_transactions, checks.max_transaction_seconds)
    free = check_backup_directory(target, size, checks.free_space_factor)
    health = _check_health_before(target, current)
    revisions = alembic_ops.pending(current, target_revision)
    logger.info(
        "%d revision(s) to apply: %s -> %s; database %d bytes, %d bytes free for the backup",
        len(revisions), current or "base", target_revision, size, free,
    )  # fmt: skip
    return PreflightReport(
        current, target_revision, revisions, size, free, health, long_transactions,
        broken_indexes, accepted_history=tuple(accepted),
    )  # fmt: skip


def _resolve_upgrade(revision: str, current: str | None) -> str:
    found = alembic_ops.heads()
    if len(found) > 1:
        raise PreflightRefused(alembic_ops.multiple_heads_advice(found))
    if current is not None and not alembic_ops.is_known(current):
        raise PreflightRefused(
            f"the database is at revision {current}, which this code does not know (a newer "
            f"release migrated it, or a revision file was lost); deploy the code that contains "
            f"{current} and migrate from there. Never `alembic stamp` over it"
        )
    target_revision = alembic_ops.resolve(revision, current)
    if target_revision == current:
        return target_revision
    if target_revision in alembic_ops.ancestors(current):
        raise ConfigurationError(
            f"revision {revision!r} ({target_revision}) is below the database's {current}: that "
            f"is a downgrade, and migrate only upgrades; use the rollback flow"
        )
    if current is not None and current not in alembic_ops.ancestors(target_revision):
        raise ConfigurationError(
            f"revision {target_revision} is not reachable by upgrading from {current} (another "
            f"branch of the history); pick a revision above {current}"
        )
    return target_revision


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
    connection: Connection, target: Target, override_reason: str
) -> list[HistoryProblem]:
    """Refuse when applied revision files changed, unless the policy accepts it with a reason."""
    problems = check_applied(connection)
    if not problems:
        return []
    listed = "; ".join(problem.line() for problem in problems)
    if not override_reason.strip() or any(p.current_sha256 is None for p in problems):
        raise PreflightRefused(
            f"revision files this database already ran are not what ran: {listed}. Restore "
            f"them from version control (`git diff`/`git log -- alembic/versions`) and deploy "
            f"that; a fix belongs in a new revision. If the change is harmless (a comment), "
            f"run again with policy.risk.changed_history_reason saying why"
        )
    get_run_logger().warning(
        "migrating %s although applied revision files changed (%s): %s",
        target.name, listed, override_reason,
    )  # fmt: skip
    return problems


def database_bytes(connection: Connection, target: Target) -> int:
    if connection.dialect.name == "postgresql":
        size = connection.scalar(text("SELECT pg_database_size(current_database())"))
        connection.rollback()
        return int(size)
    path = Path(target.url.database or "")
    return sum(
        candidate.stat().st_size for candidate in (path, Path(f"{path}-wal")) if candidate.exists()
    )


def _long_transactions(connection: Connection, older_than: float) -> list[LongTransaction]:
    if connection.dialect.name != "postgresql":
        return []
    rows = connection.execute(
        text(
            "SELECT pid, EXTRACT(EPOCH FROM now() - xact_start) AS seconds, state, "
            "application_name, left(query, 200) AS query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND xact_start < now() - make_interval(secs => :age) ORDER BY xact_start"
        ),
        {"age": older_than},
    ).all()
    connection.rollback()
    return [
        LongTransaction(r.pid, float(r.seconds), r.state or "", r.application_name or "", r.query)
        for r in rows
    ]


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
