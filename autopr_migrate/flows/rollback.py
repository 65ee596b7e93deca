"""The rollback flow: an operator takes a target back, by Alembic downgrade or by a backup.

Downgrade: plan and lint the downgrade SQL, ask for approval, lock, back up, downgrade, probe
the application at the new revision; restore the fresh backup if any of that fails. Restore:
verify the named (or newest) backup, ask for approval, dump the current state, restore, verify
the revision and every table's row count, probe. Both write the ledger, a report and events.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import State

from autopr_migrate.backends.connections import connect
from autopr_migrate.errors import BackupFailed, MigrationError, RestoreFailed, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.masking import mask_logging
from autopr_migrate.model import Risk
from autopr_migrate.orchestration import events
from autopr_migrate.orchestration.run_state import (
    NOTHING_TO_DO,
    Outcome,
    Run,
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
from autopr_migrate.orchestration.steps.approval_text import ApprovalRequest, render_restore
from autopr_migrate.orchestration.steps.backup import take_backup
from autopr_migrate.orchestration.steps.downgrade import downgrade_to
from autopr_migrate.orchestration.steps.lint_plan import gate, lint_plan, risk_of
from autopr_migrate.orchestration.steps.lock import lock_retries, migration_locks
from autopr_migrate.orchestration.steps.plan import Plan, plan_migration
from autopr_migrate.orchestration.steps.preflight import PreflightReport
from autopr_migrate.orchestration.steps.probe import check_health, probe_health
from autopr_migrate.orchestration.steps.report import Report, Timeline
from autopr_migrate.orchestration.steps.restore import restore_backup
from autopr_migrate.orchestration.steps.rollback_checks import downgrade_preflight
from autopr_migrate.policy.inputs import TARGET_NAME, bounded, check_run_inputs
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.store import ledger
from autopr_migrate.store.backups import digest
from autopr_migrate.store.catalog import find_backup
from autopr_migrate.targets.targets import default_target_name, resolve_target


def _run_name() -> str:
    parameters = flow_run.parameters
    return (f"rollback-{str(parameters.get('target') or 'default')[:TARGET_NAME]}"
            f"-{str(parameters.get('mode'))[:10]}-{str(flow_run.id)[:6]}")  # fmt: skip


@flow(name="rollback", flow_run_name=_run_name)
def rollback(
    target: str = "default",
    mode: Literal["downgrade", "restore"] = "downgrade",
    revision: str = "-1",
    backup: str = "",
    confirm_base: bool = False,
    requested_by: str = "",
    policy: MigrationPolicy | None = None,
) -> State:
    """Take a target back: ``downgrade`` to ``revision`` (-1, -N, an id, a prefix; ``base`` only
    with ``confirm_base``), or ``restore`` the named ``backup`` (default: the newest)."""
    mask_logging()
    policy = policy or MigrationPolicy()
    try:
        check_run_inputs(target=target, revision=revision, requested_by=requested_by)
        bounded(backup, "backup", advice="pass a backup's file name, as `autopr-migrate backups` "
                "lists it")  # fmt: skip
        require_requester(policy.approval, requested_by, flow="rollback")
        resolved = resolve_target(target or default_target_name(), secrets=secret_block)
        check_allowed(resolved, policy.approval)
    except Exception as exc:  # bad input, or a Secret block that could not be read
        return refused_at_start(exc)
    report = Report(resolved.name, resolved.masked_url, ledger.FAILED, "")
    run = Run(resolved, policy, report, Timeline())
    try:
        with migration_locks(resolved, policy) as run.locks:
            run.note_start()
            if mode == "restore":
                outcome = _restore(run, backup, requested_by)
            else:
                outcome = _downgrade(run, revision, confirm_base, requested_by)
            outcome.message += "".join(f"; {note}" for note in run.locks.notes)
            finish(run, outcome)
    except Exception as exc:  # every failure ends the same way: report, ledger, event
        outcome = run.failure(exc)
        finish(run, outcome)
    except BaseException as exc:  # cancelled or killed from outside: record it, then go
        finish(run, run.failure(exc))
        raise
    get_run_logger().info("%s: %s", outcome.status, outcome.message)
    return outcome.state()


def _downgrade(run: Run, revision: str, confirm_base: bool, requested_by: str) -> Outcome:
    target, policy = run.target, run.policy
    with run.timeline.step("preflight"):
        checks = run.checks = downgrade_preflight(target, revision, confirm_base=confirm_base,
                                                  policy=policy)  # fmt: skip
    run.report.from_revision, run.report.to_revision = checks.current, checks.target_revision
    if checks.target_revision == checks.current:
        return Outcome(NOTHING_TO_DO, f"target {target.name} is already at {checks.current}")
    with run.timeline.step("lint"):
        findings = lint_plan(target, checks)
    gate(findings, policy.risk)
    risk = risk_of(findings)
    with run.timeline.step("plan"):
        plan = plan_migration(target, checks, risk)
    _approve(run, ApprovalRequest(target, plan, checks, requested_by,
                                  deadline_for(policy.approval), risk))  # fmt: skip
    _back_up(run, plan, requested_by, "pre-downgrade")
    run.changing = True
    try:
        with run.timeline.step("downgrade"):
            downgrade_to.with_options(**lock_retries(policy))(
                run.connection, checks.target_revision, policy.lock)  # fmt: skip
        with run.timeline.step("probe"):
            probe_health(target, checks.target_revision, policy.probe)
    except Exception as exc:  # the backup taken a moment ago puts it back
        reason = str(exc) if isinstance(exc, MigrationError) else describe(exc)
        return _restore_after_failure(run, f"the downgrade went wrong: {reason}")
    run.changing = False
    return Outcome(ledger.SUCCEEDED, f"downgraded {target.name} from {checks.current} to "
                   f"{checks.target_revision or 'base'}; the application is healthy",
                   event=events.ROLLED_BACK)  # fmt: skip


def _restore(run: Run, name: str, requested_by: str) -> Outcome:
    target, policy = run.target, run.policy
    with run.timeline.step("preflight"):
        chosen = find_backup(target, name)
        if not chosen.path.exists():
            raise RestoreFailed(f"the backup {chosen.path.name} is listed by its sidecar, but "
                                f"its file is gone: it was not restored")  # fmt: skip
        if digest(chosen.path) != chosen.sha256:
            raise RestoreFailed(
                f"the backup {chosen.path.name} no longer matches the sha256 in its sidecar: "
                f"it was not restored"
            )
        with connect(target) as connection:
            current = alembic_ops.current(connection)
        checks = run.checks = PreflightReport(current, chosen.revision, [], chosen.bytes, 0,
                                              check_health(target.health_url, timeout=5),
                                              operation="restore")  # fmt: skip
    run.report.from_revision, run.report.to_revision = current, chosen.revision
    run.report.backup = chosen.path.name
    plan = Plan(target.name, current, chosen.revision, [], "", "")
    risk = Risk("high", ["every write since the backup is discarded"])
    request = ApprovalRequest(target, plan, checks, requested_by, deadline_for(policy.approval),
                              risk)  # fmt: skip
    text = partial(render_restore, backup=chosen)
    with run.timeline.step("approval"):
        approval = await_approval(request, policy.approval, text=text)
    run.report.approved_by, run.report.approval_reason = approval.approver, approval.reason
    run.backup = chosen
    run.locks.verify("the restore")
    refuse_if_moved(run.connection, checks)
    run.start_ledger({}, approval, requested_by, flow_run.id, flow_run.name,
                     operation="restore")  # fmt: skip
    run.changing = True
    return _restore_after_failure(run, f"restore requested by {approval.approver}",
                                  requested=True)  # fmt: skip


def _approve(run: Run, request: ApprovalRequest) -> None:
    with run.timeline.step("approval"):
        approval = await_approval(request, run.policy.approval)
    run.report.approved_by, run.report.approval_reason = approval.approver, approval.reason
    run.approval = approval


def _back_up(run: Run, plan: Plan, requested_by: str, label: str) -> None:
    """Prove the locks are still held, re-check the revision, back up, open the ledger row."""
    run.locks.verify("the backup")
    refuse_if_moved(run.connection, run.checks)
    with run.timeline.step("backup"):
        run.backup = take_backup(run.target, run.policy.backup, label=label,
                                 database_bytes=run.checks.database_bytes)  # fmt: skip
    run.report.backup = run.backup.path.name
    run.start_ledger(plan.checksums, run.approval, requested_by, flow_run.id, flow_run.name,
                     operation=run.checks.operation)  # fmt: skip
    run.locks.verify("the downgrade")


def _restore_after_failure(run: Run, reason: str, *, requested: bool = False) -> Outcome:
    start = run.backup.revision
    try:
        with run.timeline.step("restore"):
            restored = restore_backup(run.target, run.backup, run.policy.backup,
                                      require_dump=requested)  # fmt: skip
        run.rewrite_ledger()
        with run.timeline.step("probe after restore"):
            probe_health.with_options(name="probe-health-after-restore")(
                run.target, start, run.policy.probe)  # fmt: skip
    except BackupFailed as exc:  # a requested restore that could not keep the current state
        run.changing = False
        return Outcome(ledger.FAILED, f"{reason}; {exc}")
    except Exception as exc:  # nothing left to try automatically
        problem = str(exc) if isinstance(exc, MigrationError) else describe(exc)
        return Outcome(ledger.FAILED, f"{reason}; the restore of {run.backup.path.name} failed "
                       f"({problem}). The database needs a person now")  # fmt: skip
    run.changing = False
    status = ledger.RESTORED
    counts = (f"; row counts now differ from the backup in {', '.join(restored.count_differences)}"
              " (writes since the restore?)") if restored.count_differences else ""  # fmt: skip
    text = (f"restored {run.target.name} from {run.backup.path.name} (taken "
            f"{run.backup.created_at}): at {start or 'base'}, healthy; the state before was "
            f"dumped to {restored.broken_state_dump}{counts}")  # fmt: skip
    if requested:
        return Outcome(ledger.SUCCEEDED, text, event=events.RESTORED)
    return Outcome(status, f"{reason}; {text}")


if __name__ == "__main__":
    rollback()
