"""The rollback flow: an operator takes a target back, by Alembic downgrade or by a backup.

Downgrade: plan and lint the downgrade SQL, ask for approval, then the guarded change (lock,
back up, downgrade, probe at the new revision; restore the fresh backup if any of that fails).
Restore: verify the named (or newest) backup, ask for approval, then the restore sequence (dump
the current state, restore, verify the revision and every table's row count, probe). Both write
the ledger, a report and events.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import State

from autopr_migrate.backends.connections import connect
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.masking import mask_logging
from autopr_migrate.model import Operation
from autopr_migrate.operations.approval_text import ChangeApproval, RestoreApproval
from autopr_migrate.operations.guarded_change import Change, guarded_change, refuse_if_moved
from autopr_migrate.operations.recovery import Stage, restore_and_probe
from autopr_migrate.operations.restore import verify_backup
from autopr_migrate.operations.risk import gate, risk_of
from autopr_migrate.operations.rules import require_person_for_production, require_requester
from autopr_migrate.orchestration.outcome import (
    NOTHING_TO_DO,
    Outcome,
    change_outcome,
    restore_outcome,
)
from autopr_migrate.orchestration.run_state import Run, refused_at_start
from autopr_migrate.orchestration.secrets import secret_block
from autopr_migrate.orchestration.steps.approval import await_approval, deadline_for
from autopr_migrate.orchestration.steps.lint_plan import lint_plan
from autopr_migrate.orchestration.steps.plan import plan_migration, publish_plan
from autopr_migrate.orchestration.steps.rollback_checks import downgrade_preflight
from autopr_migrate.orchestration.task_steps import TaskSteps
from autopr_migrate.policy.inputs import TARGET_NAME, bounded, check_run_inputs
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.store.catalog import find_backup
from autopr_migrate.targets.targets import default_target_name, resolve_target


def _run_name() -> str:
    parameters = flow_run.parameters
    return (
        f"rollback-{str(parameters.get('target') or 'default')[:TARGET_NAME]}"
        f"-{str(parameters.get('mode'))[:10]}-{str(flow_run.id)[:6]}"
    )


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
        bounded(
            backup,
            "backup",
            advice="pass a backup's file name, as `autopr-migrate backups` lists it",
        )
        require_requester(policy.approval, requested_by, flow="rollback")
        resolved = resolve_target(target or default_target_name(), secrets=secret_block)
        require_person_for_production(resolved, policy.approval)
    except Exception as exc:  # bad input, or a Secret block that could not be read
        return refused_at_start(exc)
    run = Run.begin(resolved, policy, requested_by)
    if mode == "restore":
        outcome = run.under_locks(lambda: _restore(run, backup))
    else:
        outcome = run.under_locks(lambda: _downgrade(run, revision, confirm_base))
    get_run_logger().info("%s: %s", outcome.status, outcome.message)
    return outcome.state()


def _downgrade(run: Run, revision: str, confirm_base: bool) -> Outcome:
    target, policy = run.target, run.policy
    with run.timeline.step("preflight"):
        checks = run.checks = downgrade_preflight(
            target, revision, confirm_base=confirm_base, policy=policy
        )
    run.report.from_revision, run.report.to_revision = checks.current, checks.target_revision
    if checks.target_revision == checks.current:
        return Outcome(NOTHING_TO_DO, f"target {target.name} is already at {checks.current}")
    with run.timeline.step("plan"):
        plan = plan_migration(target, checks)
    with run.timeline.step("lint"):
        findings = lint_plan(target, checks, plan)
    gate(findings, policy.risk, log=get_run_logger())
    risk = risk_of(findings, unknown_sql=plan.planned.unknown)
    publish_plan(target, checks, plan, risk)
    request = ChangeApproval(
        target, plan, checks, run.requested_by, deadline_for(policy.approval), risk
    )
    with run.timeline.step("approval"):
        run.record_approval(await_approval(request, policy.approval))
    change = Change.downgrade(checks, plan.checksums)
    return change_outcome(guarded_change(run, TaskSteps(), change), change, target.name)


def _restore(run: Run, name: str) -> Outcome:
    target, policy = run.target, run.policy
    with run.timeline.step("preflight"):
        chosen = find_backup(target, name)
        verify_backup(chosen)
        with connect(target) as connection:
            current = alembic_ops.current(target.project, connection)
    run.report.from_revision, run.report.to_revision = current, chosen.revision
    run.report.backup = chosen.path.name
    request = RestoreApproval(
        target, chosen, current, run.requested_by, deadline_for(policy.approval)
    )
    with run.timeline.step("approval"):
        run.record_approval(await_approval(request, policy.approval))
    run.backup = chosen
    run.verify_locks("the restore")
    refuse_if_moved(target, run.connection, current)
    run.start_ledger({}, operation=Operation.RESTORE)
    run.changing = True
    recovery = restore_and_probe(
        TaskSteps(),
        run.timeline,
        target,
        chosen,
        policy,
        rewrite_ledger=run.rewrite_ledger_row,
        require_dump=True,
    )
    run.changing = recovery.stopped_at in (Stage.RESTORE, Stage.PROBE)
    reason = f"restore requested by {run.approval.approver}"
    return restore_outcome(recovery, reason, target.name, requested=True)
