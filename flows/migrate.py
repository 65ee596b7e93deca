"""The migrate flow: preflight, plan, approval, lock, backup, upgrade, probe; undo on failure.

If the upgrade or the probe fails, the flow puts the database back, in this order: the failed
revision's own transaction rolls back; else Alembic downgrades to the starting revision; else
the backup taken right before the upgrade is restored (after dumping the broken state). Each
step is a task run, so the UI shows what was undone.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from sqlalchemy import Connection

from flows import alembic_ops, events
from flows.database import connect
from flows.errors import (
    HealthCheckFailed,
    MigrationError,
    PreflightRefused,
    UpgradeFailed,
    describe,
)
from flows.policy import MigrationPolicy
from flows.steps import ledger
from flows.steps.approval import await_approval, check_allowed, deadline_for
from flows.steps.approval_text import ApprovalRequest
from flows.steps.backup import Backup, take_backup
from flows.steps.lock import database_lock, run_lock
from flows.steps.plan import plan_migration
from flows.steps.preflight import PreflightReport, preflight
from flows.steps.probe import probe_health
from flows.steps.report import Report, Timeline, write_report
from flows.steps.restore import downgrade_to, restore_backup
from flows.steps.upgrade import UpgradeResult, apply_upgrade
from flows.targets import Target, default_target_name, resolve_target

_EVENTS = {
    ledger.SUCCEEDED: events.SUCCEEDED,
    ledger.ROLLED_BACK: events.ROLLED_BACK,
    ledger.RESTORED: events.RESTORED,
    ledger.FAILED: events.FAILED,
}


@dataclass
class Outcome:
    status: str
    message: str


def _run_name() -> str:
    """``migrate-<target>-<revision>-<id prefix>``: readable, and unique enough to type."""
    parameters = flow_run.parameters
    return (
        f"migrate-{parameters.get('target') or 'default'}-{parameters.get('revision', 'head')}"
        f"-{str(flow_run.id)[:6]}"
    )


@flow(name="migrate", flow_run_name=_run_name)
def migrate(
    target: str = "default",
    revision: str = "head",
    requested_by: str = "",
    policy: MigrationPolicy | None = None,
) -> State:
    """Upgrade a target database to ``revision`` (``head``, ``+1``, an id or a prefix).

    ``requested_by`` names who asked for the run: with four eyes, they may not approve it.
    """
    policy = policy or MigrationPolicy()
    resolved = resolve_target(target or default_target_name())
    check_allowed(resolved, policy.approval)
    report = Report(resolved.name, resolved.masked_url, ledger.FAILED, "", to_revision=revision)
    timeline = Timeline()
    try:
        with run_lock(resolved, wait_seconds=policy.lock.wait_seconds):
            outcome = _locked(resolved, revision, requested_by, policy, report, timeline)
            write_report(report, timeline)
    except MigrationError as exc:
        outcome = Outcome(ledger.FAILED, f"{exc}; nothing was changed")
        report.status, report.message = outcome.status, outcome.message
        write_report(report, timeline)
    if outcome.status in _EVENTS:
        events.emit(resolved, _EVENTS[outcome.status], status=outcome.status,
                    message=outcome.message, from_revision=report.from_revision,
                    to_revision=report.to_revision)  # fmt: skip
    get_run_logger().info("%s: %s", outcome.status, outcome.message)
    if outcome.status in (ledger.SUCCEEDED, "nothing-to-do"):
        return Completed(message=outcome.message)
    return Failed(message=outcome.message)


def _locked(
    target: Target, revision: str, requested_by: str, policy: MigrationPolicy, report: Report,
    timeline: Timeline,
) -> Outcome:  # fmt: skip
    with timeline.step("preflight"):
        checks = preflight(target, revision, policy)
    report.from_revision, report.to_revision = checks.current, checks.target_revision
    if checks.nothing_to_do:
        report.status, report.message = "nothing-to-do", f"already at {checks.current}"
        return Outcome("nothing-to-do", f"target {target.name} is already at {checks.current}")
    with timeline.step("plan"):
        plan = plan_migration(target, checks)
    request = ApprovalRequest(target, plan, checks, requested_by, deadline_for(policy.approval))
    with timeline.step("approval"):
        approval = await_approval(request, policy.approval)
    report.approved_by, report.approval_reason = approval.approver, approval.reason
    connect_timeout = policy.preflight.connect_timeout_seconds
    with (
        connect(target, connect_timeout=connect_timeout) as connection,
        database_lock(connection, target, wait_seconds=policy.lock.wait_seconds),
    ):
        _refuse_if_moved(connection, checks)
        with timeline.step("backup"):
            backup = take_backup(target, policy.backup, database_bytes=checks.database_bytes)
        report.backup = backup.path.name
        with connect(target) as ledger_connection:
            entry = ledger.start(
                ledger_connection, target=target.name, from_revision=checks.current,
                to_revision=checks.target_revision, revision_checksums=plan.checksums,
                flow_run_id=str(flow_run.id), flow_run_name=flow_run.name,
                approved_by=approval.approver, approval_reason=approval.reason,
                requested_by=requested_by or None,
                backup_path=str(backup.path), backup_sha256=backup.sha256,
            )  # fmt: skip
        events.emit(target, events.STARTED, from_revision=checks.current,
                    to_revision=checks.target_revision, backup=backup.path.name)  # fmt: skip
        outcome = _apply(connection, target, checks, backup, policy, report, timeline)
        with connect(target) as ledger_connection:
            ledger.finish(ledger_connection, entry, status=outcome.status,
                          timings=timeline.as_dict(), message=outcome.message)  # fmt: skip
    report.status, report.message = outcome.status, outcome.message
    return outcome


def _refuse_if_moved(connection: Connection, checks: PreflightReport) -> None:
    now = alembic_ops.current(connection)
    connection.rollback()
    if now != checks.current:
        raise PreflightRefused(
            f"the database moved from {checks.current or 'base'} to {now or 'base'} since the "
            f"plan was made (someone else migrated it); start a new run to plan again"
        )


def _apply(
    connection: Connection, target: Target, checks: PreflightReport, backup: Backup,
    policy: MigrationPolicy, report: Report, timeline: Timeline,
) -> Outcome:  # fmt: skip
    start, goal = checks.current, checks.target_revision
    upgrade = apply_upgrade.with_options(
        retries=policy.lock.lock_retries,
        retry_delay_seconds=[policy.lock.retry_backoff_seconds * 2**n for n in range(10)],
    )
    try:
        with timeline.step("upgrade"):
            result: UpgradeResult = upgrade(connection, target, goal, policy.lock)
        report.revision_seconds = result.durations
    except Exception as exc:  # whatever broke, the database must be put back
        reason = (
            str(exc) if isinstance(exc, UpgradeFailed) else f"the upgrade failed: {describe(exc)}"
        )
        if connection.in_transaction():
            connection.rollback()
        reached = alembic_ops.current(connection)
        connection.rollback()
        if reached == start:
            return Outcome(
                ledger.FAILED,
                f"{reason}; its transaction rolled back and the database is at "
                f"{start or 'base'} (verified): nothing was changed",
            )
        return _undo(connection, target, checks, backup, policy, timeline,
                     f"{reason} (after reaching {reached})")  # fmt: skip
    try:
        with timeline.step("probe"):
            probe_health(
                target, goal, policy.probe, application_expected=checks.application_expected
            )
    except Exception as exc:  # a probe that cannot prove health counts as unhealthy
        reason = str(exc) if isinstance(exc, HealthCheckFailed) else describe(exc)
        return _undo(connection, target, checks, backup, policy, timeline, reason)
    return Outcome(ledger.SUCCEEDED, f"upgraded {target.name} from {start or 'base'} to {goal}")


def _undo(
    connection: Connection, target: Target, checks: PreflightReport, backup: Backup,
    policy: MigrationPolicy, timeline: Timeline, reason: str,
) -> Outcome:  # fmt: skip
    start = checks.current
    probe = probe_health.with_options(name="probe-health-after-undo")
    try:
        with timeline.step("downgrade"):
            downgrade_to(connection, start)
        with timeline.step("probe after downgrade"):
            probe(target, start, policy.probe, application_expected=checks.application_expected)
        return Outcome(
            ledger.ROLLED_BACK,
            f"{reason}; rolled back: downgraded to {start or 'base'}, and the application is "
            f"healthy again",
        )
    except Exception as exc:  # any failure here means the backup must come back
        downgrade_problem = str(exc) if isinstance(exc, MigrationError) else describe(exc)
    try:
        with timeline.step("restore"):
            restored = restore_backup(target, backup, policy.backup)
        with timeline.step("probe after restore"):
            probe(target, start, policy.probe, application_expected=checks.application_expected)
    except Exception as exc:  # nothing left to try automatically
        problem = str(exc) if isinstance(exc, MigrationError) else describe(exc)
        return Outcome(
            ledger.FAILED,
            f"{reason}; the downgrade did not help ({downgrade_problem}); the restore did not "
            f"either ({problem}). The database needs a person now; its backup is {backup.path}",
        )
    return Outcome(
        ledger.RESTORED,
        f"{reason}; the downgrade did not help ({downgrade_problem}); restored backup "
        f"{backup.path.name} (the broken state was dumped to {restored.broken_state_dump}): the "
        f"database is at {start or 'base'} and the application is healthy",
    )


if __name__ == "__main__":
    migrate()
