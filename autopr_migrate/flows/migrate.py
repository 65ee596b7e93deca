"""The migrate flow: preflight, lint, rehearse, plan, approval, window; then the guarded change.

The guarded change (``operations.guarded_change``) backs up, upgrades and probes; if the
upgrade or the probe fails it puts the database back: the failed revision's own transaction
rolls back; else Alembic downgrades to the starting revision; else the backup taken right
before the upgrade is restored (after dumping the broken state). Each step is a task run, so
the UI shows what was undone.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import State

from autopr_migrate.backends.connections import connect
from autopr_migrate.errors import describe
from autopr_migrate.masking import mask_logging
from autopr_migrate.model import Status
from autopr_migrate.operations.approval_text import ChangeApproval
from autopr_migrate.operations.guarded_change import Change, guarded_change
from autopr_migrate.operations.history_integrity import ledger_checksums
from autopr_migrate.operations.rehearse import require
from autopr_migrate.operations.risk import gate, risk_of
from autopr_migrate.operations.rules import (
    needed_time,
    require_person_for_production,
    require_requester,
    require_window_for_production,
    windows_text,
)
from autopr_migrate.orchestration.fleet_members import fleet_slot
from autopr_migrate.orchestration.outcome import (
    NOTHING_TO_DO,
    Outcome,
    change_outcome,
    with_accepted_history,
)
from autopr_migrate.orchestration.run_state import Run, refused_at_start
from autopr_migrate.orchestration.secrets import secret_block
from autopr_migrate.orchestration.steps.approval import (
    approval_of,
    deadline_for,
)
from autopr_migrate.orchestration.steps.lint_plan import lint_plan
from autopr_migrate.orchestration.steps.plan import plan_migration, publish_plan
from autopr_migrate.orchestration.steps.preflight import preflight
from autopr_migrate.orchestration.steps.prune import prune_backups
from autopr_migrate.orchestration.steps.rehearse import impact_for_approval, rehearse
from autopr_migrate.orchestration.steps.window import wait_for_window
from autopr_migrate.orchestration.task_steps import TaskSteps
from autopr_migrate.policy.inputs import REVISION, TARGET_NAME, check_run_inputs
from autopr_migrate.policy.parameters import FleetApproval, MigrationPolicy
from autopr_migrate.targets.targets import default_target_name, resolve_target


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
    fleet_approval: FleetApproval | None = None,
) -> State:
    """Upgrade a target database to ``revision`` (``head``, ``+1``, an id or a prefix).

    ``requested_by`` names who asked for the run: with four eyes (the default) it is required,
    and they may not approve it. ``fleet_approval``: the run is a fleet's member, whose plan a
    person approved for the whole fleet; it applies that plan only, without asking again.
    """
    mask_logging()
    policy = policy or MigrationPolicy()
    try:
        check_run_inputs(target=target, revision=revision, requested_by=requested_by)
        require_requester(policy.approval, requested_by, flow="migrate")
        resolved = resolve_target(target or default_target_name(), secrets=secret_block)
        require_person_for_production(resolved, policy.approval)
        require_window_for_production(resolved, policy.window)
    except Exception as exc:  # bad input, or a Secret block that could not be read
        return refused_at_start(exc)
    run = Run.begin(resolved, policy, requested_by, to_revision=revision)
    with fleet_slot(fleet_approval.fleet_id if fleet_approval else None):
        outcome = run.under_locks(lambda: _locked(run, revision, fleet_approval))
    if outcome.status == Status.SUCCEEDED:
        _prune(run)
    get_run_logger().info("%s: %s", outcome.status, outcome.message)
    return outcome.state()


def _prune(run: Run) -> None:
    """Retention after a success; housekeeping that fails never turns the success into a failure."""
    try:
        prune_backups(run.target, run.policy.backup)
    except Exception as exc:  # the migration is done and recorded; say what was left behind
        get_run_logger().warning("backup retention did not run: %s", describe(exc))


def _locked(run: Run, revision: str, fleet_approval: FleetApproval | None) -> Outcome:
    target, policy = run.target, run.policy
    with run.timeline.step("preflight"):
        checks = run.checks = preflight(target, revision, policy)
    run.report.from_revision, run.report.to_revision = checks.current, checks.target_revision
    if checks.nothing_to_do:
        return Outcome(NOTHING_TO_DO, f"target {target.name} is already at {checks.current}")
    with run.timeline.step("plan"):
        plan = plan_migration(target, checks)
    with run.timeline.step("lint"):
        findings = lint_plan(target, checks, plan)
    gate(findings, policy.risk, log=get_run_logger())
    with run.timeline.step("rehearse"):
        rehearsal = rehearse(target, checks, policy.rehearsal, policy.impact, findings)
    require(rehearsal, policy.rehearsal)
    if plan.planned.unknown and rehearsal.recorded:
        plan = plan.with_recorded(rehearsal.recorded)
        if plan.planned.recorded and plan.planned.dialect == "postgresql":
            with run.timeline.step("lint recorded SQL"):
                findings = lint_plan(target, checks, plan)
            gate(findings, policy.risk, log=get_run_logger())
    impact = impact_for_approval(target, run.report, rehearsal, findings, policy.impact)
    risk = risk_of(findings, rehearsal, plan.planned.unknown, impact)
    publish_plan(target, checks, plan, risk)
    request = ChangeApproval(
        target,
        plan,
        checks,
        run.requested_by,
        deadline_for(policy.approval),
        risk,
        windows_text(policy.window),
    )
    with run.timeline.step("approval"):
        run.record_approval(approval_of(request, policy.approval, fleet_approval))
    needed = needed_time(policy.window, rehearsal.upgrade_seconds, checks.database_bytes)
    with run.timeline.step("window"):
        wait_for_window(target, policy.window, needed)
    with connect(target) as reader:
        checksums = ledger_checksums(target.project, reader, checks, plan.checksums)
    change = Change.upgrade(checks, checksums)
    steps = TaskSteps()
    result = guarded_change(run, steps, change)
    run.report.revision_seconds = result.revision_seconds
    steps.record_impact(run.report, target)
    outcome = change_outcome(result, change, target.name)
    return with_accepted_history(outcome, checks, policy.risk.changed_history_reason)


if __name__ == "__main__":
    migrate()
