"""autopr-migrate: the migration operations from a terminal, over the same code as the flows."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from flows.commands import approvals, resolve, status
from flows.commands import plan as planning
from flows.errors import MigrationError
from flows.targets import default_target_name, resolve_target


def _status(args: argparse.Namespace) -> int:
    """Show a target's revision, the code's head and the revisions still to run."""
    code, lines = status.status(resolve_target(args.target))
    print("\n".join(lines))
    return code


def _resolve(args: argparse.Namespace) -> int:
    """Inspect a run that never finished, and mark it once the database is safe."""
    target = resolve_target(args.target)
    rows, _current, lines = resolve.describe(target)
    print("\n".join(lines))
    if not rows or args.mark is None:
        return 0 if not rows else 1
    if not args.yes:
        answer = input(f"mark ledger row {rows[-1].id} of {target.masked_url} {args.mark}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing changed")
            return 1
    print(resolve.mark(target, args.mark))
    return 0


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
    print(planning.plan(resolve_target(args.target), args.revision))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autopr-migrate", description="Safe, orchestrated migrations for AutoPR Engine."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add(commands, "status", _status)
    resolver = _add(commands, "resolve", _resolve)
    resolver.add_argument("--mark", choices=sorted(resolve.MARKS), help="how to settle the row")
    resolver.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    planner = _add(commands, "plan", _plan)
    planner.add_argument("--revision", default="head", help="head, +N, an id or a prefix")
    _add(commands, "pending", _pending, target=False)
    _add(commands, "show", _show, target=False).add_argument("run", help="id or name")
    _answer(_add(commands, "approve", _approve, target=False))
    _answer(_add(commands, "reject", _reject, target=False))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except MigrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
