"""``autopr-migrate``: the migration operations from a terminal, over the same code as the flows.

Every command ends with a code from ``ExitCode`` (docs/cli.md); an error is one line on
standard error. Listing commands take ``--format json``.
"""

from __future__ import annotations

import os
import sys
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import httpx
from cyclopts import App, CycloptsError, Group, Parameter
from prefect.settings import PREFECT_API_URL
from rich.console import Console
from rich.markup import escape

from autopr_migrate.analysis.analyzer import LintError
from autopr_migrate.cli import approvals
from autopr_migrate.cli.backups import BACKUP_COLUMNS, list_backups, prune_now, run_restore_test
from autopr_migrate.cli.fleet import (
    CENSUS_COLUMNS,
    MEMBER_COLUMNS,
    census_for,
    fleet_plan_text,
    member_rows,
)
from autopr_migrate.cli.lint import (
    decode_sql,
    exit_code_of,
    lint_revisions,
    lint_text,
    render_report,
)
from autopr_migrate.cli.plan import approval_text_for
from autopr_migrate.cli.render import Format, as_json, error, lines, table
from autopr_migrate.cli.status import status_of
from autopr_migrate.cli.verify import ALL_CHECKS, verify_history
from autopr_migrate.errors import ConfigurationError, ExitCode, MigrationError, describe
from autopr_migrate.history.commands import UnusableHistory
from autopr_migrate.masking import mask_logging
from autopr_migrate.operations.resolve import resolve, situation_of
from autopr_migrate.orchestration.dead_run import release_dead_run
from autopr_migrate.orchestration.secrets import secret_block
from autopr_migrate.orchestration.setup import set_up, targets_to_set_up
from autopr_migrate.policy.inputs import shown
from autopr_migrate.policy.parameters import BackupPolicy, FleetPolicy
from autopr_migrate.targets.project import Project, default_project, project_for
from autopr_migrate.targets.targets import Target, default_target_name, resolve_target
from autopr_migrate.targets.urls import parse_database_url

TRACEBACK_ENV = "AUTOPR_MIGRATE_TRACEBACK"
TARGETS = Group("Targets", sort_key=1)
APPROVALS = Group("Approvals", sort_key=2)
GATES = Group("CI gates", sort_key=3)
SETUP = Group("Set-up", sort_key=4)

app = App(
    name="autopr-migrate",
    help="Safe, orchestrated Alembic migrations, run as Prefect flows.",
    version_flags=[],
    result_action="return_value",
)

TargetOption = Annotated[
    str | None, Parameter(help="The target's name (default: AUTOPR_DEFAULT_TARGET, or 'default').")
]
FormatOption = Annotated[Format, Parameter(help="text for people, json for machines.")]
ProjectOf = Annotated[
    str | None,
    Parameter(help="Use this target's project's history (default: the default project)."),
]


def _target(name: str | None) -> Target:
    return resolve_target(name or default_target_name(), secrets=secret_block)


def _project(target: str | None) -> Project:
    """The history of ``target``'s project (no database URL needed); the default project."""
    return project_for(target) if target else default_project()


@app.command(group=TARGETS)
def status(*, target: TargetOption = None, format: FormatOption = "text") -> int:
    """Show a target's revision, the code's head and the revisions still to run."""
    found = status_of(_target(target))
    as_json(found.to_json()) if format == "json" else lines(found.lines())
    return ExitCode.OK if found.known else ExitCode.CHECK_FAILED


@app.command(group=TARGETS)
def plan(*, target: TargetOption = None, revision: str = "head") -> int:
    """Print the plan a migrate run would ask approval for, without running anything.

    Parameters
    ----------
    revision
        head, +N, a revision id or a unique prefix.
    """
    lines(approval_text_for(_target(target), revision))
    return ExitCode.OK


@app.command(group=TARGETS)
def backups(
    *,
    target: TargetOption = None,
    prune: bool = False,
    keep_last: int = BackupPolicy().keep_last,
    keep_days: float = BackupPolicy().keep_days,
    format: FormatOption = "text",
) -> int:
    """List a target's backups: time, revision, size, sha256 check, retention's verdict.

    Parameters
    ----------
    prune
        Delete what retention lets go (never blind: refused while the database is down).
    keep_last
        Retention: the newest N stay.
    keep_days
        Retention: and those younger than this.
    """
    found = _target(target)
    policy = BackupPolicy(keep_last=keep_last, keep_days=keep_days)
    pruned = prune_now(found, policy) if prune else []
    listed = list_backups(found, policy)
    if format == "json":
        as_json({**listed.to_json(), "pruned": pruned})
        return ExitCode.OK
    lines(pruned)
    if not listed.rows:
        lines(f"target {listed.target} has no backups in {listed.directory}")
        return ExitCode.OK
    table(
        f"backups of {listed.target} in {listed.directory}:",
        BACKUP_COLUMNS,
        [list(row.values()) for row in listed.rows],
    )
    if listed.incomplete:
        lines(f"retention verdicts are incomplete: {listed.incomplete}")
    return ExitCode.OK


@app.command(name="restore-test", group=TARGETS)
def restore_test(*, target: TargetOption = None, backup: str = "") -> int:
    """Restore a backup (default: the newest) into a scratch copy and verify it.

    Parameters
    ----------
    backup
        A backup's file name, as `backups` lists it.
    """
    result = run_restore_test(_target(target), backup)
    lines(result.lines())
    return ExitCode.OK if result.passed else ExitCode.CHECK_FAILED


@app.command(name="resolve", group=TARGETS)
def resolve_run(
    *,
    target: TargetOption = None,
    mark: Literal["rolled-back", "failed"] | None = None,
    restore: bool = False,
    yes: bool = False,
) -> int:
    """Settle a run that never finished: mark it rolled back or failed, or restore its backup.

    Parameters
    ----------
    mark
        rolled-back: the database is verified back at the run's start; failed: take it as is.
    restore
        Restore the run's backup, verify, probe, and mark the row restored.
    yes
        Do not ask; alone, do what is recommended.
    """
    if mark and restore:
        raise ConfigurationError("choose --mark or --restore, not both")
    found = _target(target)
    situation = situation_of(found)
    lines(situation.lines)
    if situation.row is None:
        return ExitCode.OK
    action = "restore" if restore else mark
    if action is None and yes:
        action = situation.recommended()
        if action is None:
            return ExitCode.NOTHING_DONE
    if action is None:
        if not sys.stdin.isatty():
            return ExitCode.NOTHING_DONE
        action = _ask_choice()
        if action is None:
            lines("nothing changed")
            return ExitCode.NOTHING_DONE
    elif not yes and _ask(
        f"{action} ledger row {situation.row.id} of {found.masked_url}? [y/N] "
    ) not in ("y", "yes"):
        lines("nothing changed")
        return ExitCode.NOTHING_DONE
    resolution = resolve(found, action)
    lines(resolution.lines)
    if resolution.row is not None:  # the dead run's Prefect side: Crashed, its slot freed
        lines(release_dead_run(found, resolution.row.flow_run_id))
    return ExitCode.OK


def _ask_choice() -> str | None:
    choices = {"r": "rolled-back", "s": "restore", "f": "failed"}
    return choices.get(
        _ask("[r] mark rolled back, re[s]tore the backup, [f] mark failed, [n]othing: ")
    )


def _ask(question: str) -> str:
    """The answer, trimmed and in lower case; "" for no answer (end of input too)."""
    try:
        answer = Console().input(escape(question))
    except EOFError:
        return ""
    return answer.strip().lower()


@app.command(group=APPROVALS)
def pending(*, format: FormatOption = "text") -> int:
    """List the migration runs waiting for approval."""
    runs = approvals.pending()
    rows = [item.row() for item in runs]
    if format == "json":
        as_json(rows)
    elif not rows:
        lines("no runs wait for approval")
    else:
        table(
            "runs waiting for approval:",
            approvals.PENDING_COLUMNS,
            [list(row.values()) for row in rows],
        )
    return ExitCode.OK


@app.command(group=APPROVALS)
def show(run: str, /) -> int:
    """Print the plan a paused run asks approval for.

    Parameters
    ----------
    run
        The flow run's id or name.
    """
    lines(approvals.plan_text(run))
    return ExitCode.OK


Approver = Annotated[str, Parameter(name="--as", help="Your name, as the policy knows it.")]
Reason = Annotated[str, Parameter(help="Why: a ticket, a change request, a note.")]


@app.command(group=APPROVALS)
def approve(run: str, /, *, approver: Approver, reason: Reason = "") -> int:
    """Approve a paused migration run (by id or name).

    Parameters
    ----------
    run
        The flow run's id or name.
    """
    lines(approvals.decide(run, approve=True, approver=approver, reason=reason))
    return ExitCode.OK


@app.command(group=APPROVALS)
def reject(run: str, /, *, approver: Approver, reason: Reason = "") -> int:
    """Reject a paused migration run (by id or name); it ends with nothing changed.

    Parameters
    ----------
    run
        The flow run's id or name.
    """
    lines(approvals.decide(run, approve=False, approver=approver, reason=reason))
    return ExitCode.OK


@app.command(group=GATES)
def lint(
    *,
    start: Annotated[str | None, Parameter(name="--from", help="Lint from here (base).")] = None,
    end: Annotated[str, Parameter(name="--to", help="To here (heads).")] = "heads",
    sql: Annotated[
        str | None,
        Parameter(help="Lint this SQL file instead ('-': stdin).", allow_leading_hyphen=True),
    ] = None,
    assume_lock_timeout: bool = False,
    format: FormatOption = "text",
    target: ProjectOf = None,
) -> int:
    """Lint revisions (or any PostgreSQL SQL) offline; the exit code is the risk level (0-3).

    Parameters
    ----------
    assume_lock_timeout
        With --sql: whoever runs it sets a lock_timeout.
    """
    try:
        if sql is not None:  # even "": an empty variable in CI must not lint something else
            data = sys.stdin.buffer.read() if sql == "-" else Path(sql).read_bytes()
        report = (
            lint_text(decode_sql(data), assume_lock_timeout=assume_lock_timeout)
            if sql is not None
            else lint_revisions(_project(target), start, end)
        )
    except OSError as exc:
        return _fail(f"cannot read {shown(sql)}: {exc.strerror}", ExitCode.NO_INPUT)
    except (LintError, UnusableHistory) as exc:
        return _fail(str(exc), ExitCode.DATA)
    lines(render_report(report, format))
    return exit_code_of(report)


@app.command(group=GATES)
def verify(
    *,
    server: Annotated[str | None, Parameter(help="A PostgreSQL URL (.../postgres)")] = None,
    target: ProjectOf = None,
) -> int:
    """Check the schema history: one head, well-formed declarations, up/down/up, no drift.

    Exits 0 when every check passes and 3 (as lint's "critical") when one fails. The throwaway
    database is a temporary SQLite file, or a new database created (and dropped) on --server.
    """
    parsed = parse_database_url(server, variable="--server") if server else None
    try:
        results = verify_history(_project(target), parsed)
    except UnusableHistory as exc:
        return _fail(str(exc), ExitCode.DATA)
    for name, passed, detail in results:
        lines(f"{'ok    ' if passed else 'FAILED'} {name}: {detail}")
    passed = all(ok for _, ok, _ in results) and len(results) == ALL_CHECKS
    return ExitCode.OK if passed else ExitCode.CRITICAL


@app.command(group=SETUP)
def setup(
    *,
    target: Annotated[
        list[str] | None,
        Parameter(help="A target to set up (repeat); default: every AUTOPR_DB_<NAME>_URL."),
    ] = None,
    paused_alert_seconds: float = 1800,
) -> int:
    """Create the work pool, concurrency limits, alert blocks and automations (idempotent).

    Parameters
    ----------
    paused_alert_seconds
        Alert when a run waits for approval longer than this.
    """
    targets = targets_to_set_up(target or [])
    lines(set_up(targets, paused_alert=timedelta(seconds=paused_alert_seconds)))
    return ExitCode.OK


fleet_app = App(
    name="fleet", help="Many databases, one approved change: census, plan, status.", group=TARGETS
)
app.command(fleet_app)
Selectors = Annotated[
    list[str],
    Parameter(help="Target names, globs (tenant-*), group:<name> or label:<name>."),
]


@fleet_app.command(name="census")
def fleet_census(targets: Selectors, /, *, format: FormatOption = "text") -> int:
    """Read every selected target (revision, schema, size, health, unfinished runs); change
    nothing. Exit 83 when the census leaves any out."""
    census = census_for(targets)
    rows = census.rows()
    if format == "json":
        as_json(rows)
    else:
        table("fleet census", CENSUS_COLUMNS, [[row[c] for c in CENSUS_COLUMNS] for row in rows])
    return ExitCode.CHECK_FAILED if census.excluded else ExitCode.OK


@fleet_app.command(name="plan")
def fleet_plan(targets: Selectors, /, *, revision: str = "head", rehearse: bool = True) -> int:
    """Print what a fleet run would ask approval for: the census, one plan per starting
    revision (made and rehearsed on its largest member), the waves and the budget.

    Parameters
    ----------
    rehearse
        Rehearse each group's plan on a copy of its largest member (--no-rehearse: do not).
    """
    policy = FleetPolicy()
    if not rehearse:
        migration = policy.migration.model_copy(
            update={"rehearsal": policy.migration.rehearsal.model_copy(update={"enabled": False})}
        )
        policy = policy.model_copy(update={"migration": migration})
    lines(fleet_plan_text(targets, revision, policy))
    return ExitCode.OK


@fleet_app.command(name="status")
def fleet_status(fleet_id: str, /, *, format: FormatOption = "text") -> int:
    """The member runs of fleet FLEET_ID and where each stands. Exit 83 when any failed."""
    members = member_rows(fleet_id)
    if format == "json":
        as_json([member.__dict__ for member in members])
    else:
        table(
            f"fleet {fleet_id}: {len(members)} member run(s)",
            MEMBER_COLUMNS,
            [
                [m.target, m.state.lower(), m.seconds or "", m.message[:80], m.worker]
                for m in members
            ],
        )
    failed = any(member.final and not member.succeeded for member in members)
    return ExitCode.CHECK_FAILED if failed else ExitCode.OK


def _fail(message: str, code: ExitCode) -> int:
    error(message)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one command; every way it can end is one line and a code from ``ExitCode``."""
    mask_logging()
    tokens = sys.argv[1:] if argv is None else argv
    try:
        code = app(tokens, exit_on_error=False, print_error=False, help_on_error=False)
    except CycloptsError as exc:
        return _fail(f"{str(exc).rstrip('.')}; see autopr-migrate --help", ExitCode.USAGE)
    except MigrationError as exc:
        return _fail(str(exc), exc.exit_code)
    except httpx.TransportError as exc:
        where = PREFECT_API_URL.value() or "(no PREFECT_API_URL)"
        return _fail(
            f"the Prefect API at {where} does not answer ({describe(exc)[:200]}); start "
            f"it (make server) or set PREFECT_API_URL",
            ExitCode.UNAVAILABLE,
        )
    except KeyboardInterrupt:
        return _fail("interrupted", ExitCode.INTERRUPTED)
    except Exception as exc:  # a bug of ours: one line, and never a code a gate reads as a level
        if os.environ.get(TRACEBACK_ENV):
            traceback.print_exc()
        return _fail(
            f"internal error in autopr-migrate: {describe(exc)[:300]}; set {TRACEBACK_ENV}=1 "
            f"to see the traceback, and report it",
            ExitCode.INTERNAL,
        )
    return int(code) if isinstance(code, int) else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
