"""How a run ended, in words: the typed results of the sequences, rendered for people.

The flow's final state, the report, the ledger row and the final event all carry the sentence
made here; nothing below this layer writes prose about an outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect.states import Completed, Failed, State

from autopr_migrate.model import Operation, Status
from autopr_migrate.operations.guarded_change import Change, ChangeResult, WayBack
from autopr_migrate.operations.preflight import PreflightReport
from autopr_migrate.operations.recovery import Recovery, Stage
from autopr_migrate.orchestration import events

NOTHING_TO_DO = "nothing-to-do"


@dataclass
class Outcome:
    status: str
    message: str
    event: str | None = None  # default: the one that goes with the status

    def state(self) -> State:
        if self.status in (Status.SUCCEEDED, NOTHING_TO_DO):
            return Completed(message=self.message)
        return Failed(message=self.message)


def _at(revision: str | None) -> str:
    return revision or "base"


def _count_note(recovery: Recovery) -> str:
    differences = recovery.restored.count_differences if recovery.restored else []
    if not differences:
        return ""
    return (
        f"; row counts now differ from the backup in {', '.join(differences)} (writes since "
        f"the restore?)"
    )


def change_outcome(result: ChangeResult, change: Change, target_name: str) -> Outcome:
    if change.operation == Operation.DOWNGRADE:
        return _downgrade_outcome(result, change, target_name)
    start = _at(change.start)
    if result.status == Status.SUCCEEDED:
        return Outcome(result.status, f"upgraded {target_name} from {start} to {change.goal}")
    reason = result.failure or ""
    if result.partly_applied:
        reason += f" (after reaching {_at(result.reached)})"
    if result.unverified is not None:
        return Outcome(
            result.status,
            f"{reason}; the database is at {start}, but checking for "
            f"leftovers failed: {result.unverified}",
        )
    if result.undone_by == WayBack.TRANSACTION:
        cleaned = (
            f"; dropped the INVALID index(es) it left: {', '.join(result.dropped_indexes)}"
            if result.dropped_indexes
            else ""
        )
        return Outcome(
            result.status,
            f"{reason}; its transaction rolled back and the database "
            f"is at {start} (verified){cleaned}: nothing was changed",
        )
    if result.undone_by == WayBack.DOWNGRADE:
        return Outcome(
            result.status,
            f"{reason}; rolled back: downgraded to {start}, and the application is healthy again",
        )
    tried = dict(result.tried)
    recovery = result.recovery
    if result.undone_by == WayBack.RESTORE and recovery is not None and recovery.restored:
        return Outcome(
            result.status,
            f"{reason}; the downgrade did not help "
            f"({tried.get(WayBack.DOWNGRADE)}); restored backup "
            f"{recovery.backup.path.name} (the broken state was {recovery.restored.state_before}): "
            f"the database is at {start} and "
            f"the application is healthy{_count_note(recovery)}",
        )
    backup = recovery.backup.path if recovery else "none"
    return Outcome(
        result.status,
        f"{reason}; the downgrade did not help "
        f"({tried.get(WayBack.DOWNGRADE)}); the restore did not either "
        f"({tried.get(WayBack.RESTORE)}). The database needs a person now; its backup "
        f"is {backup}",
    )


def with_accepted_history(outcome: Outcome, checks: PreflightReport, reason: str) -> Outcome:
    """Say which changed applied revision files the policy accepted, and why."""
    if checks.accepted_history:
        changed = ", ".join(problem.revision for problem in checks.accepted_history)
        outcome.message += (
            f"; the changed applied revision file(s) {changed} were accepted: {reason}"
        )
    return outcome


def _downgrade_outcome(result: ChangeResult, change: Change, target_name: str) -> Outcome:
    if result.status == Status.SUCCEEDED:
        return Outcome(
            result.status,
            f"downgraded {target_name} from {change.start} to "
            f"{_at(change.goal)}; the application is healthy",
            event=events.ROLLED_BACK,
        )
    reason = f"the downgrade went wrong: {result.failure}"
    return restore_outcome(result.recovery, reason, target_name)


def restore_outcome(
    recovery: Recovery, reason: str, target_name: str, *, requested: bool = False
) -> Outcome:
    """A restore, after something went wrong (``reason``) or because an operator asked."""
    backup = recovery.backup
    if recovery.stopped_at == Stage.DUMP:
        return Outcome(Status.FAILED, f"{reason}; {recovery.problem}")
    if not recovery.succeeded:
        return Outcome(
            Status.FAILED,
            f"{reason}; the restore of {backup.path.name} failed "
            f"({recovery.problem}). The database needs a person now",
        )
    text = (
        f"restored {target_name} from {backup.path.name} (taken {backup.created_at}): at "
        f"{_at(backup.revision)}, healthy; the state before was "
        f"{recovery.restored.state_before}{_count_note(recovery)}"
    )
    if requested:
        return Outcome(Status.SUCCEEDED, text, event=events.RESTORED)
    return Outcome(Status.RESTORED, f"{reason}; {text}")
