"""autopr-migrate: the migration operations from a terminal, over the same code as the flows."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from flows.commands import resolve, status
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


def _add(
    commands: argparse._SubParsersAction, name: str, handler: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=handler.__doc__, description=handler.__doc__)
    parser.add_argument(
        "--target", default=default_target_name(), help="target name (default: %(default)s)"
    )
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autopr-migrate", description="Safe, orchestrated migrations for AutoPR Engine."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add(commands, "status", _status)
    resolver = _add(commands, "resolve", _resolve)
    resolver.add_argument("--mark", choices=sorted(resolve.MARKS), help="how to settle the row")
    resolver.add_argument("--yes", action="store_true", help="do not ask for confirmation")
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
