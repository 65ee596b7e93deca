"""autopr-migrate: the migration operations from a terminal, over the same code as the flows."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

import httpx
from prefect.settings import PREFECT_API_URL

from autopr_migrate import exit_codes
from autopr_migrate.cli import approvals, resolve, status
from autopr_migrate.cli import backups as backing_up
from autopr_migrate.cli import lint as linting
from autopr_migrate.cli import plan as planning
from autopr_migrate.cli import verify as verifying
from autopr_migrate.errors import ConfigurationError, DatabaseUnreachable, MigrationError, describe
from autopr_migrate.history.commands import UnusableHistory
from autopr_migrate.masking import mask_logging, mask_secrets
from autopr_migrate.orchestration import setup as setting_up
from autopr_migrate.orchestration.secrets import secret_block
from autopr_migrate.policy.inputs import shown
from autopr_migrate.policy.parameters import BackupPolicy
from autopr_migrate.targets.targets import default_target_name, resolve_target
from autopr_migrate.targets.urls import parse_database_url


def _status(args: argparse.Namespace) -> int:
    """Show a target's revision, the code's head and the revisions still to run."""
    code, lines = status.status(resolve_target(args.target, secrets=secret_block))
    print("\n".join(lines))
    return code


def _backups(args: argparse.Namespace) -> int:
    """List a target's backups (time, revision, size, sha256, retention); --prune applies it."""
    target = resolve_target(args.target, secrets=secret_block)
    policy = BackupPolicy(keep_last=args.keep_last, keep_days=args.keep_days)
    if args.prune:
        print("\n".join(backing_up.prune(target, policy)))
    print("\n".join(backing_up.listing(target, policy)))
    return 0


def _restore_test(args: argparse.Namespace) -> int:
    """Restore a backup (default: the newest) into a scratch copy and verify it."""
    result = backing_up.restore_test(resolve_target(args.target, secrets=secret_block), args.backup)
    print("\n".join(result.lines()))
    return 0 if result.passed else 1


def _resolve(args: argparse.Namespace) -> int:
    """Settle a run that never finished: mark it rolled back or failed, or restore its backup."""
    target = resolve_target(args.target, secrets=secret_block)
    situation = resolve.describe(target)
    print("\n".join(situation.lines))
    if situation.row is None:
        return 0
    action = "restore" if args.restore else args.mark
    if action is None and args.yes:
        action = situation.recommended()
        if action is None:
            return 1
    if action is None:
        if not sys.stdin.isatty():
            return 1
        action = _ask_choice()
        if action is None:
            print("nothing changed")
            return 1
    elif not args.yes:
        answer = input(f"{action} ledger row {situation.row.id} of {target.masked_url}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing changed")
            return 1
    print("\n".join(resolve.resolve(target, action)))
    return 0


def _ask_choice() -> str | None:
    choices = {"r": "rolled-back", "s": "restore", "f": "failed"}
    answer = input("[r] mark rolled back, re[s]tore the backup, [f] mark failed, [n]othing: ")
    return choices.get(answer.strip().lower()[:1])


def _pending(_args: argparse.Namespace) -> int:
    """List the migration runs waiting for approval."""
    runs = approvals.pending()
    print("\n".join(approvals.pending_table(runs)) if runs else "no runs wait for approval")
    return 0


def _show(args: argparse.Namespace) -> int:
    """Print the plan a paused run asks approval for."""
    print(approvals.plan_text(args.run))
    return 0


def _approve(args: argparse.Namespace) -> int:
    """Approve a paused migration run (by id or name)."""
    print(approvals.decide(args.run, approve=True, approver=args.approver, reason=args.reason))
    return 0


def _reject(args: argparse.Namespace) -> int:
    """Reject a paused migration run (by id or name); it ends with nothing changed."""
    print(approvals.decide(args.run, approve=False, approver=args.approver, reason=args.reason))
    return 0


def _plan(args: argparse.Namespace) -> int:
    """Print the plan a migrate run would show, without running anything."""
    print(planning.plan(resolve_target(args.target, secrets=secret_block), args.revision))
    return 0


def _lint(args: argparse.Namespace) -> int:
    """Lint revisions (or any PostgreSQL SQL) offline; the exit code is the risk level."""
    from autopr_migrate.analysis.analyzer import LintError

    try:
        if args.sql is not None:  # even "": an empty variable in CI must not lint something else
            data = sys.stdin.buffer.read() if args.sql == "-" else Path(args.sql).read_bytes()
        report = (
            linting.lint_text(linting.decode_sql(data),
                              assume_lock_timeout=args.assume_lock_timeout)
            if args.sql is not None else linting.lint_revisions(args.start, args.end)
        )  # fmt: skip
    except OSError as exc:
        return _fail(f"cannot read {shown(args.sql)}: {exc.strerror}", exit_codes.NO_INPUT)
    except (LintError, UnusableHistory) as exc:
        return _fail(str(exc), exit_codes.DATA)
    except ConfigurationError as exc:
        return _fail(str(exc), exit_codes.USAGE)
    print(linting.render(report, args.format))
    return linting.exit_code(report)


def _verify(args: argparse.Namespace) -> int:
    """Check the schema history: one head, up/down/up on a throwaway database, no drift.

    Exits 0 when every check passes and 3 (as lint's "critical") when one fails.
    """
    try:
        server = parse_database_url(args.server, variable="--server") if args.server else None
    except ValueError as exc:
        return _fail(str(exc), exit_codes.USAGE)
    try:
        results = verifying.verify(server)
    except UnusableHistory as exc:
        return _fail(str(exc), exit_codes.DATA)
    except ConfigurationError as exc:
        return _fail(str(exc), exit_codes.USAGE)
    except DatabaseUnreachable as exc:
        return _fail(str(exc), exit_codes.UNAVAILABLE)
    for name, passed, detail in results:
        print(f"{'ok    ' if passed else 'FAILED'} {name}: {detail}")
    return 0 if all(passed for _, passed, _ in results) and len(results) == 3 else 3


def _fail(message: str, code: int) -> int:
    print(f"error: {mask_secrets(message)}", file=sys.stderr)
    return code


def _setup(args: argparse.Namespace) -> int:
    """Create the work pool, concurrency limits, alert blocks and automations (idempotent)."""
    targets = setting_up.targets_to_set_up(args.targets or [])
    lines = setting_up.setup(targets, paused_alert=timedelta(seconds=args.paused_alert_seconds))
    print("\n".join(lines))
    return 0


def _add(
    commands: argparse._SubParsersAction,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    *,
    target: bool = True,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=handler.__doc__, description=handler.__doc__)
    if target:
        parser.add_argument(
            "--target", default=default_target_name(), help="target name (default: %(default)s)"
        )
    parser.set_defaults(handler=handler)
    return parser


def _answer(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="the flow run's id or name")
    parser.add_argument("--as", dest="approver", required=True, help="your name")
    parser.add_argument("--reason", default="", help="why: a ticket, a change request, a note")


TRACEBACK_ENV = "AUTOPR_MIGRATE_TRACEBACK"


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 64 (EX_USAGE): 1-3 belong to lint's risk levels."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(exit_codes.USAGE, f"{self.prog}: error: {mask_secrets(message)[:300]}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="autopr-migrate", description="Safe, orchestrated migrations for AutoPR Engine."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add(commands, "status", _status)
    resolver = _add(commands, "resolve", _resolve)
    settle = resolver.add_mutually_exclusive_group()
    settle.add_argument("--mark", choices=sorted(resolve.MARKS),
                        help="rolled-back: the database is verified back at the run's start; "
                        "failed: take the database as it is")  # fmt: skip
    settle.add_argument("--restore", action="store_true",
                        help="restore the run's backup, verify, probe, mark restored")  # fmt: skip
    resolver.add_argument("--yes", action="store_true",
                          help="do not ask; alone: do what is recommended")  # fmt: skip
    lister = _add(commands, "backups", _backups)
    defaults = BackupPolicy()
    lister.add_argument("--keep-last", type=int, default=defaults.keep_last,
                        help="retention: the newest N stay (default: %(default)s)")  # fmt: skip
    lister.add_argument("--keep-days", type=float, default=defaults.keep_days,
                        help="retention: and those younger (default: %(default)s)")  # fmt: skip
    lister.add_argument("--prune", action="store_true", help="delete what retention lets go")
    tester = _add(commands, "restore-test", _restore_test)
    tester.add_argument("--backup", default="", help="a backup's file name (default: newest)")
    planner = _add(commands, "plan", _plan)
    planner.add_argument("--revision", default="head", help="head, +N, an id or a prefix")
    _add(commands, "pending", _pending, target=False)
    _add(commands, "show", _show, target=False).add_argument("run", help="id or name")
    _answer(_add(commands, "approve", _approve, target=False))
    _answer(_add(commands, "reject", _reject, target=False))
    linter = _add(commands, "lint", _lint, target=False)
    linter.add_argument("--from", dest="start", help="lint from this revision (default: base)")
    linter.add_argument("--to", dest="end", default="heads", help="to this revision (heads)")
    linter.add_argument("--sql", help="lint this PostgreSQL SQL file instead ('-': stdin)")
    linter.add_argument("--assume-lock-timeout", action="store_true",
                        help="with --sql: a lock_timeout is set by whoever runs it")  # fmt: skip
    linter.add_argument("--format", choices=["text", "json"], default="text")
    setter = _add(commands, "setup", _setup, target=False)
    setter.add_argument("--target", dest="targets", action="append",
                        help="a target to create a lock for (repeat; default: every "
                        "AUTOPR_DB_<NAME>_URL in the environment)")  # fmt: skip
    setter.add_argument("--paused-alert-seconds", type=float, default=1800,
                        help="alert when a run waits for approval longer than this")  # fmt: skip
    verifier = _add(commands, "verify", _verify, target=False)
    verifier.add_argument(
        "--server",
        help="a PostgreSQL URL (.../postgres) to create the throwaway database on; default: a "
        "temporary SQLite file",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; every way it can end is one line and a documented exit code."""
    mask_logging()
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except MigrationError as exc:
        return _fail(str(exc), exc.exit_code)
    except httpx.TransportError as exc:
        return _fail(
            f"the Prefect API at {PREFECT_API_URL.value() or '(no PREFECT_API_URL)'} does not "
            f"answer ({describe(exc)[:200]}); start it (make server) or set PREFECT_API_URL",
            exit_codes.UNAVAILABLE,
        )
    except KeyboardInterrupt:
        return _fail("interrupted", exit_codes.INTERRUPTED)
    except Exception as exc:  # a bug of ours: one line, and never a code a gate reads as a level
        if os.environ.get(TRACEBACK_ENV):
            traceback.print_exc()
        return _fail(
            f"internal error in autopr-migrate: {describe(exc)[:300]}; set {TRACEBACK_ENV}=1 "
            f"to see the traceback, and report it",
            exit_codes.INTERNAL,
        )


if __name__ == "__main__":
    sys.exit(main())
