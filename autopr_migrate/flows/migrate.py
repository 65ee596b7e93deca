"""The migrate flow: preflight, plan, approval, lock, backup, upgrade, probe; undo on failure.

If the upgrade or the probe fails, the flow puts the database back, in this order: the failed
revision's own transaction rolls back; else Alembic downgrades to the starting revision; else
the backup taken right before the upgrade is restored (after dumping the broken state). Each
step is a task run, so the UI shows what was undone.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import State

from autopr_migrate.backends.connections import connect, invalid_indexes
from autopr_migrate.errors import HealthCheckFailed, MigrationError, UpgradeFailed, describe
from autopr_migrate.masking import mask_logging
from autopr_migrate.operations.history_integrity import unrecorded_applied
from autopr_migrate.orchestration import events
from autopr_migrate.orchestration.run_state import (
    NOTHING_TO_DO,
    Outcome,
    Run,
    current_revision,
    finish,
    refuse_if_moved,
    refused_at_start,
)
from autopr_migrate.orchestration.secrets import secret_block
from autopr_migrate.orchestration.steps.approval import (
    await_approval,
    check_allowed,
    deadline_for,
    require_requester,
)
from autopr_migrate.orchestration.steps.approval_text import ApprovalRequest
from autopr_migrate.orchestration.steps.backup import take_backup
from autopr_migrate.orchestration.steps.downgrade import downgrade_to, drop_invalid_indexes
from autopr_migrate.orchestration.steps.lint_plan import gate, lint_plan, risk_of
from autopr_migrate.orchestration.steps.lock import ensure_locked, lock_retries, migration_locks
from autopr_migrate.orchestration.steps.plan import plan_migration
from autopr_migrate.orchestration.steps.preflight import preflight
from autopr_migrate.orchestration.steps.probe import probe_health
from autopr_migrate.orchestration.steps.prune import prune_backups
from autopr_migrate.orchestration.steps.rehearse import rehearse, require
from autopr_migrate.orchestration.steps.report import Report, Timeline
from autopr_migrate.orchestration.steps.restore import restore_backup
from autopr_migrate.orchestration.steps.upgrade import apply_upgrade
from autopr_migrate.orchestration.steps.window import check_allowed as check_window_allowed
from autopr_migrate.orchestration.steps.window import describe as describe_windows
from autopr_migrate.orchestration.steps.window import needed_time, wait_for_window
from autopr_migrate.policy.inputs import REVISION, TARGET_NAME, check_run_inputs
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.store import ledger
from autopr_migrate.targets.targets import default_target_name, resolve_target

_NOTHING_TO_DO = NOTHING_TO_DO


def _run_name() -> str:
    """``migrate-<target>-<revision>-<id prefix>``: readable, and unique enough to type."""
    parameters = flow_run.parameters
    return (
        f"migrate-{str(parameters.get('target') or 'default')[:TARGET_NAME]}"
        f"-{str(parameters.get('revision', 'head'))[:REVISION]}-{str(flow_run.id)[:6]}"
    )


@flow(name="migrate", flow_run_name=_run_name)
def migrate(
    target: str = "default",
    revision: str = "head",
    requested_by: str = "",
    policy: MigrationPolicy | None = None,
) -> State:
    """Upgrade a target database to ``revision`` (``head``, ``+1``, an id or a prefix).

    ``requested_by`` names who asked for the run: with four eyes (the default) it is required,
    and they may not approve it.
    """
    mask_logging()
    policy = policy or MigrationPolicy()
    try:
        check_run_inputs(target=target, revision=revision, requested_by=requested_by)
        require_requester(policy.approval, requested_by, flow="migrate")
        resolved = resolve_target(target or default_target_name(), secrets=secret_block)
        check_allowed(resolved, policy.approval)
        check_window_allowed(resolved, policy.window)
    except Exception as exc:  # bad input, or a Secret block that could not be read
        return refused_at_start(exc)
    run = Run(resolved, policy, Report(resolved.name, resolved.masked_url, ledger.FAILED, "",
                                       to_revision=revision), Timeline())  # fmt: skip
    try:
        with migration_locks(resolved, policy) as run.locks:
            run.note_start()
            outcome = _locked(run, revision, requested_by)
            outcome.message += "".join(f"; {note}" for note in run.locks.notes)
            finish(run, outcome)
    except Exception as exc:  # every failure ends the same way: report, ledger, event
        outcome = run.failure(exc)
        finish(run, outcome)
    except BaseException as exc:  # cancelled or killed from outside: record it, then go
        finish(run, run.failure(exc))
        raise
    if outcome.status == ledger.SUCCEEDED:
        _prune(run)
    get_run_logger().info("%s: %s", outcome.status, outcome.message)
    return outcome.state()


def _prune(run: Run) -> None:
    """Retention after a success; housekeeping that fails never turns the success into a failure."""
    try:
        prune_backups(run.target, run.policy.backup)
    except Exception as exc:  # the migration is done and recorded; say what was left behind
        get_run_logger().warning("backup retention did not run: %s", describe(exc))


def _locked(run: Run, revision: str, requested_by: str) -> Outcome:
    target, policy = run.target, run.policy
    with run.timeline.step("preflight"):
        checks = run.checks = preflight(target, revision, policy)
    run.report.from_revision, run.report.to_revision = checks.current, checks.target_revision
    if checks.nothing_to_do:
        return Outcome(_NOTHING_TO_DO, f"target {target.name} is already at {checks.current}")
    with run.timeline.step("lint"):
        findings = lint_plan(target, checks)
    gate(findings, policy.risk)
    with run.timeline.step("rehearse"):
        rehearsal = rehearse(target, checks, policy.rehearsal)
    require(rehearsal, policy.rehearsal)
    risk = risk_of(findings, rehearsal)
    with run.timeline.step("plan"):
        plan = plan_migration(target, checks, risk)
    request = ApprovalRequest(target, plan, checks, requested_by, deadline_for(policy.approval),
                              risk, describe_windows(policy.window))  # fmt: skip
    with run.timeline.step("approval"):
        approval = await_approval(request, policy.approval)
    run.report.approved_by, run.report.approval_reason = approval.approver, approval.reason
    needed = needed_time(policy.window, rehearsal.upgrade_seconds, checks.database_bytes)
    with run.timeline.step("window"):
        wait_for_window(target, policy.window, needed)
    run.locks.verify("the backup")
    refuse_if_moved(run.connection, checks)
    with run.timeline.step("backup"):
        run.backup = take_backup(target, policy.backup, database_bytes=checks.database_bytes)
    run.report.backup = run.backup.path.name
    with connect(target) as reader:
        baseline = unrecorded_applied(reader, checks.current)
    accepted = {p.revision: p.current_sha256 for p in checks.accepted_history}
    run.start_ledger({**baseline, **accepted, **plan.checksums}, approval, requested_by,
                     flow_run.id, flow_run.name)  # fmt: skip
    events.emit(target, events.STARTED, from_revision=checks.current,
                to_revision=checks.target_revision, backup=run.backup.path.name)  # fmt: skip
    run.locks.verify("the upgrade")
    outcome = _apply(run)
    if checks.accepted_history:
        changed = ", ".join(problem.revision for problem in checks.accepted_history)
        outcome.message += (f"; the changed applied revision file(s) {changed} were accepted: "
                            f"{policy.risk.changed_history_reason}")  # fmt: skip
    return outcome


def _apply(run: Run) -> Outcome:
    checks, policy, connection = run.checks, run.policy, run.connection
    start, goal = checks.current, checks.target_revision
    upgrade = apply_upgrade.with_options(**lock_retries(policy))
    run.changing = True
    try:
        with run.timeline.step("upgrade"):
            run.report.revision_seconds = upgrade(
                connection, run.target, goal, policy.lock
            ).durations
    except Exception as exc:  # whatever broke, the database must be put back
        reason = (
            str(exc) if isinstance(exc, UpgradeFailed) else f"the upgrade failed: {describe(exc)}"
        )
        return _after_failed_upgrade(run, reason)
    try:
        with run.timeline.step("probe"):
            probe_health(run.target, goal, policy.probe,
                         application_expected=checks.application_expected)  # fmt: skip
    except Exception as exc:  # a probe that cannot prove health counts as unhealthy
        return _undo(run, str(exc) if isinstance(exc, HealthCheckFailed) else describe(exc))
    run.changing = False
    return Outcome(ledger.SUCCEEDED, f"upgraded {run.target.name} from {start or 'base'} to {goal}")


def _after_failed_upgrade(run: Run, reason: str) -> Outcome:
    """The upgrade failed: if nothing committed, say so (after checking); else undo."""
    start = run.checks.current
    reached = current_revision(run)
    if reached != start:
        return _undo(run, f"{reason} (after reaching {reached or 'base'})")
    try:
        with run.timeline.step("check leftovers"):
            with connect(run.target) as connection:
                leftovers = invalid_indexes(connection) - run.checks.invalid_indexes
            if leftovers:
                drop_invalid_indexes(run.target, leftovers)
    except Exception as exc:  # the revision did not commit, but something may be left over
        return Outcome(ledger.FAILED, f"{reason}; the database is at {start or 'base'}, but "
                       f"checking for leftovers failed: {describe(exc)}")  # fmt: skip
    cleaned = f"; dropped the INVALID index(es) it left: {', '.join(sorted(leftovers))}" if (
        leftovers) else ""  # fmt: skip
    run.changing = False
    return Outcome(
        ledger.FAILED,
        f"{reason}; its transaction rolled back and the database is at {start or 'base'} "
        f"(verified){cleaned}: nothing was changed",
    )


def _undo(run: Run, reason: str) -> Outcome:
    start, policy = run.checks.current, run.policy
    expected = run.checks.application_expected
    probe = probe_health.with_options(name="probe-health-after-undo")
    try:
        ensure_locked(run.connection, run.target)
        with run.timeline.step("downgrade"):
            downgrade_to.with_options(**lock_retries(policy))(run.connection, start, policy.lock)
        with run.timeline.step("probe after downgrade"):
            probe(run.target, start, policy.probe, application_expected=expected)
        run.changing = False
        return Outcome(ledger.ROLLED_BACK, f"{reason}; rolled back: downgraded to "
                       f"{start or 'base'}, and the application is healthy again")  # fmt: skip
    except Exception as exc:  # any failure here means the backup must come back
        downgrade_problem = str(exc) if isinstance(exc, MigrationError) else describe(exc)
    try:
        with run.timeline.step("restore"):
            restored = restore_backup(run.target, run.backup, policy.backup)
        run.rewrite_ledger()
        with run.timeline.step("probe after restore"):
            probe(run.target, start, policy.probe, application_expected=expected)
    except Exception as exc:  # nothing left to try automatically
        problem = str(exc) if isinstance(exc, MigrationError) else describe(exc)
        return Outcome(ledger.FAILED, f"{reason}; the downgrade did not help ({downgrade_problem});"
                       f" the restore did not either ({problem}). The database needs a person "
                       f"now; its backup is {run.backup.path}")  # fmt: skip
    run.changing = False
    counts = (f"; row counts now differ from the backup in {', '.join(restored.count_differences)}"
              " (writes since the restore?)") if restored.count_differences else ""  # fmt: skip
    return Outcome(ledger.RESTORED, f"{reason}; the downgrade did not help ({downgrade_problem}); "
                   f"restored backup {run.backup.path.name} (the broken state was dumped to "
                   f"{restored.broken_state_dump}): the database is at {start or 'base'} and the "
                   f"application is healthy{counts}")  # fmt: skip


if __name__ == "__main__":
    migrate()
