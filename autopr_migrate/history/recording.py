"""The statements a migration executes, heard as they run and grouped by revision.

For revisions Alembic cannot render offline (they query the database, reflect a table, or
use ``op.get_bind()``), the SQL is learned by running them on a scratch copy. Every
SQLAlchemy connection of this process to that database is heard, so an ``env.py`` that opens
its own is heard too; bound parameters are written into the statement so that it reads, and
lints, as the SQL that ran.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, event

from autopr_migrate.history.runtime import VERSION_WRITTEN
from autopr_migrate.targets.project import Project

_NOT_PLANNED = ("PRAGMA", "SELECT", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SHOW")
_NAMED = re.compile(r"%\((\w+)\)s")
_NUMBERED = re.compile(r"\$(\d+)\b")
_LONGEST_LITERAL = 200


@contextmanager
def statements_by_revision(project: Project, database: str) -> Iterator[dict[str, list[str]]]:
    """While the block runs: revision -> the statements it executed on ``database``, in order
    (reads and transaction control left out)."""
    recorded: dict[str, list[str]] = {}
    heard: list[str] = []

    def listen(conn, _cursor, statement: str, parameters: Any, _context, executemany) -> None:
        if conn.engine.url.database != database:
            return
        if project.version_table in statement:
            if found := VERSION_WRITTEN.search(statement):
                recorded[found.group(1)] = heard.copy()
                heard.clear()
            return
        if not statement.lstrip().upper().startswith(_NOT_PLANNED):
            heard.append(with_parameters(statement.strip(), parameters, executemany))

    event.listen(Engine, "before_cursor_execute", listen)
    try:
        yield recorded
    finally:
        event.remove(Engine, "before_cursor_execute", listen)


def with_parameters(statement: str, parameters: Any, executemany: bool = False) -> str:
    """``statement`` with its bound parameters written in as SQL literals."""
    sets = len(parameters) if executemany and parameters else 0
    values = parameters[0] if sets else parameters
    text = statement.rstrip().rstrip(";")
    if isinstance(values, Mapping) and values:
        text = _NAMED.sub(lambda m: _named(m, values), text).replace("%%", "%")
    elif isinstance(values, Sequence) and not isinstance(values, str) and values:
        text = _positional(text, list(values))
    note = f"  -- the first of {sets} parameter sets" if sets > 1 else ""
    return f"{text};{note}"


def _named(match: re.Match[str], values: Mapping[str, Any]) -> str:
    name = match.group(1)
    return literal(values[name]) if name in values else match.group(0)


def _positional(text: str, values: list[Any]) -> str:
    if _NUMBERED.search(text):
        return _NUMBERED.sub(
            lambda m: (
                literal(values[int(m.group(1)) - 1])
                if int(m.group(1)) <= len(values)
                else m.group(0)
            ),
            text,
        )
    marker = "%s" if "%s" in text else "?"
    pieces = text.split(marker)
    if len(pieces) - 1 != len(values):
        return text
    out = [pieces[0]]
    for value, piece in zip(values, pieces[1:], strict=True):
        out += [literal(value), piece]
    return "".join(out).replace("%%", "%") if marker == "%s" else "".join(out)


def literal(value: Any) -> str:
    """A SQL literal for display and lint: long values are shortened."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"'\\x{bytes(value)[: _LONGEST_LITERAL // 2].hex()}'"
    text = str(value)
    if len(text) > _LONGEST_LITERAL:
        text = text[:_LONGEST_LITERAL] + "..."
    return "'" + text.replace("'", "''") + "'"
