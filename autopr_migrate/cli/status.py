"""``autopr-migrate status``: where a target is, and what an upgrade would run."""

from __future__ import annotations

from alembic.script.revision import RevisionError
from alembic.util import CommandError

from autopr_migrate.backends.connections import connect
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.targets.targets import Target


def status(target: Target) -> tuple[int, list[str]]:
    """Exit code and lines: the database's revision, the code's head, the pending revisions."""
    with connect(target) as connection:
        current = alembic_ops.current(connection)
    lines = [
        f"target:   {target.name} ({target.masked_url})",
        f"current:  {current or 'base (empty)'}",
        f"head:     {', '.join(alembic_ops.heads())}",
    ]
    try:
        todo = alembic_ops.pending(current)
    except (CommandError, RevisionError):
        return 1, [*lines, f"pending:  unknown: {current} is not in this code's history"]
    lines.append(f"pending:  {len(todo)}")
    lines += [f"  {info.revision}  {info.message}" for info in todo]
    return 0, lines
