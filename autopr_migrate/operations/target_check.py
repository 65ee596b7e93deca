"""The daily look at a target: is it where the code says, unchanged, finished, backed up, healthy?

Each finding is one area with a verdict and the lines an operator needs. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from autopr_migrate.backends.connections import connect
from autopr_migrate.errors import MigrationError, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.history.drift import model_drift
from autopr_migrate.operations.history_integrity import judge_applied
from autopr_migrate.operations.probe import check_health
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.store import ledger
from autopr_migrate.store.catalog import age_hours
from autopr_migrate.store.retention import judge
from autopr_migrate.targets.project import Project
from autopr_migrate.targets.targets import Target


@dataclass(frozen=True)
class Finding:
    area: str
    ok: bool
    summary: str
    details: list[str] = field(default_factory=list)


@dataclass
class TargetCheck:
    target: str
    masked_url: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [finding for finding in self.findings if not finding.ok]


def check_target(target: Target, policy: MigrationPolicy) -> TargetCheck:
    """Every area judged; one that cannot be read is a finding, never the end of the check."""
    result = TargetCheck(target.name, target.masked_url)
    try:
        with connect(target, connect_timeout=policy.preflight.connect_timeout_seconds) as conn:
            project = target.project
            current = alembic_ops.current(project, conn)
            conn.rollback()
            for area, look in (
                ("revision", lambda: _revision(project, current)),
                ("model drift", lambda: _drift(project, conn, current)),
                ("applied revisions", lambda: _history(project, conn)),
                ("ledger", lambda: _unfinished(conn, target)),
            ):
                result.findings.append(_guarded(area, look, conn))
    except Exception as exc:  # an unreachable database is the first thing to report
        result.findings.append(Finding("database", False, f"cannot be read: {describe(exc)}"))
    result.findings += [_backups(target, policy), _health(target, policy)]
    return result


def _guarded(area: str, look, connection) -> Finding:
    """One area that cannot be judged is a problem of its own, not the end of the check."""
    try:
        return look()
    except Exception as exc:  # reported as what it is, with the other areas still checked
        connection.rollback()
        message = str(exc) if isinstance(exc, MigrationError) else describe(exc)
        return Finding(area, False, f"could not be checked: {message}")


def _revision(project: Project, current: str | None) -> Finding:
    heads = alembic_ops.heads(project)
    if len(heads) != 1:
        return Finding("revision", False, alembic_ops.multiple_heads_advice(heads))
    if current is not None and not alembic_ops.is_known(project, current):
        return Finding("revision", False, f"at {current}, which this code does not know")
    if current == heads[0]:
        return Finding("revision", True, f"at head {current}")
    pending = alembic_ops.pending(project, current, heads[0])
    return Finding(
        "revision",
        False,
        f"at {current or 'base'}; {len(pending)} revision(s) pending up to {heads[0]}",
        [f"`{info.revision}` {info.message}" for info in pending],
    )


def _drift(project: Project, connection, current: str | None) -> Finding:
    heads = alembic_ops.heads(project)
    if len(heads) != 1 or current != heads[0]:
        return Finding("model drift", True, "not compared: the database is not at head")
    differences = model_drift(project, connection)
    if differences is None:
        return Finding(
            "model drift", True, f"not compared: project {project.name!r} names no models"
        )
    if not differences:
        return Finding("model drift", True, "the models match the database")
    return Finding(
        "model drift",
        False,
        f"{len(differences)} difference(s) between the models and the database: a model "
        f"changed without a revision, or the database was changed by hand",
        differences,
    )


def _history(project: Project, connection) -> Finding:
    history = judge_applied(project, connection)
    problems, rewrites = history.problems, history.rewrites
    if not problems:
        declared = ", ".join(rewrite.revision for rewrite in rewrites)
        return Finding(
            "applied revisions",
            True,
            "every recorded revision file is unchanged"
            + (f", or rewritten as it declares ({len(rewrites)}: {declared})" if rewrites else ""),
            [rewrite.line() for rewrite in rewrites],
        )
    return Finding(
        "applied revisions",
        False,
        f"{len(problems)} applied revision(s) no longer match what ran; migrate refuses this "
        f"target until they are restored",
        [problem.line() for problem in problems],
    )


def _unfinished(connection, target: Target) -> Finding:
    rows = ledger.unfinished(connection)
    connection.rollback()
    if not rows:
        return Finding("ledger", True, "no unfinished runs")
    now = datetime.now(UTC)
    return Finding(
        "ledger",
        False,
        f"{len(rows)} run(s) never finished: `autopr-migrate resolve --target {target.name}`",
        [
            f"row {row.id}: {row.from_revision or 'base'} -> {row.to_revision}, started "
            f"{row.started_at:%Y-%m-%d %H:%M} UTC ({_hours_since(row.started_at, now):.1f} h "
            f"ago), flow run {row.flow_run_name or row.flow_run_id}"
            for row in rows
        ],
    )


def _hours_since(moment: datetime, now: datetime) -> float:
    return (now - moment).total_seconds() / 3600


def _backups(target: Target, policy: MigrationPolicy) -> Finding:
    try:
        verdicts = judge(target, policy.backup)
    except Exception as exc:  # without the ledger, retention cannot say what is protected
        return Finding("backups", False, f"could not be judged: {describe(exc)}")
    details, expired, broken = [], 0, 0
    for verdict in verdicts:
        state = verdict.item.verify()
        backup = verdict.item.backup
        if state != "verified":
            broken += 1
            details.append(f"{backup.path.name}: {state} (sha256 check)")
        if not verdict.keep:
            expired += 1
            details.append(
                f"{backup.path.name}: {age_hours(verdict.item) / 24:.1f} days old, "
                f"outside the retention policy"
            )
    if not verdicts:
        return Finding("backups", True, "none yet (each migration takes its own)")
    newest = f"the newest is {age_hours(verdicts[0].item) / 24:.1f} days old"
    if not expired and not broken:
        summary = f"{len(verdicts)} backup(s), all intact, within policy; {newest}"
        return Finding("backups", True, summary)
    parts = [
        f"{broken} do not verify" if broken else "",
        f"{expired} older than the retention policy (`autopr-migrate backups --target "
        f"{target.name} --prune`)"
        if expired
        else "",
    ]
    return Finding("backups", False, "; ".join(part for part in parts if part), details)


def _health(target: Target, policy: MigrationPolicy) -> Finding:
    snapshot = check_health(target.health_url, timeout=policy.probe.request_timeout_seconds)
    if snapshot.healthy:
        return Finding("health", True, f"{target.masked_health_url} answers 200")
    return Finding("health", False, f"{target.masked_health_url}: {snapshot.reason}")
