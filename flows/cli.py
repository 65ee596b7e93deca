"""autopr-migrate: the migration operations from a terminal."""

from __future__ import annotations

import argparse
import sys

from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import pool
from sqlalchemy.exc import DBAPIError

from autopr.config import ConfigurationError, Settings
from autopr.database import make_engine
from autopr.database.engine import describe_connection_error
from flows import alembic_ops

EXIT_CONFIGURATION = 2
EXIT_UNREACHABLE = 3


def _status(_args: argparse.Namespace) -> int:
    """Show the database's revision, this code's head and the revisions still to run."""
    settings = Settings.from_env()
    engine = make_engine(settings.database_url, read_only=True, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            current = alembic_ops.current(connection)
    except DBAPIError as exc:
        print(f"error: {describe_connection_error(exc, settings.database_url)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        engine.dispose()
    print(f"database: {settings.masked_database_url}")
    print(f"current:  {current or 'base (empty)'}")
    print(f"head:     {', '.join(alembic_ops.heads())}")
    try:
        todo = alembic_ops.pending(current)
    except (CommandError, RevisionError):
        print(f"pending:  unknown: {current} is not in this code's history")
        return 1
    print(f"pending:  {len(todo)}")
    for info in todo:
        print(f"  {info.revision}  {info.message}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autopr-migrate", description="Safe, orchestrated migrations for AutoPR Engine."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help=_status.__doc__, description=_status.__doc__)
    status.set_defaults(handler=_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIGURATION


if __name__ == "__main__":
    sys.exit(main())
