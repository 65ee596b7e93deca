"""The statements a migration executes, heard as they run and grouped by revision.

For revisions Alembic cannot render offline (they query the database, reflect a table, or
use ``op.get_bind()``), the SQL is learned by running them on a scratch copy. Every
SQLAlchemy connection of this process to that database is heard, so an ``env.py`` that opens
its own is heard too; bound parameters are written into the statement so that it reads, and
lints, as the SQL that ran. Not heard: statements sent through a raw DBAPI cursor
(``connection.connection.cursor()``, COPY), and plain reads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from autopr_migrate.history.runtime import engine_hook, on_version_table, version_written
from autopr_migrate.targets.project import Project

_NOT_PLANNED = ("PRAGMA", "SELECT", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SHOW")
# A SELECT that changes something: a sequence moved, a table created from a query.
_SELECT_WITH_EFFECTS = re.compile(r"\b(?:setval|nextval)\s*\(|\bINTO\b", re.IGNORECASE)
# String literals first, so that a placeholder-like text inside one is left alone.
_PLACEHOLDERS = re.compile(r"'(?:[^']|'')*'|%\((\w+)\)s|%%|%s|\$(\d+)\b|\?")
_LONGEST_LITERAL = 200
MOST_STATEMENTS = 500  # per revision: a row-by-row data migration is summarised, not listed


@contextmanager
def statements_by_revision(project: Project, database: str) -> Iterator[dict[str, list[str]]]:
    """While the block runs: revision -> the statements it executed on ``database``, in order
    (reads and transaction control left out)."""
    recorded: dict[str, list[str]] = {}
    heard: list[str] = []
    skipped = [0]

    def listen(conn, _cursor, statement: str, parameters: Any, _context, executemany) -> None:
        if conn.engine.url.database != database:
            return
        if on_version_table(project, statement):
            if revision := version_written(project, statement):
                if skipped[0]:
                    heard.append(f"-- and {skipped[0]} more statement(s) like these")
                recorded[revision], skipped[0] = heard.copy(), 0
                heard.clear()
            return
        text = statement.lstrip()
        if text.upper().startswith(_NOT_PLANNED) and not (
            text.upper().startswith("SELECT") and _SELECT_WITH_EFFECTS.search(text)
        ):
            return
        if len(heard) >= MOST_STATEMENTS:
            skipped[0] += 1
            return
        paramstyle = conn.dialect.paramstyle
        heard.append(with_parameters(text.strip(), parameters, executemany, paramstyle))

    with engine_hook("before_cursor_execute", listen):
        yield recorded


def with_parameters(
    statement: str, parameters: Any, executemany: bool = False, paramstyle: str = "pyformat"
) -> str:
    """``statement`` with its bound parameters written in as SQL literals (and ``%%``, the
    driver's escaped percent sign, as the ``%`` the server saw)."""
    sets = len(parameters) if executemany and parameters else 0
    values = parameters[0] if sets else parameters
    positional = (
        list(values) if isinstance(values, Sequence) and not isinstance(values, str) else []
    )
    named = values if isinstance(values, Mapping) else {}
    escaped_percent = paramstyle in ("pyformat", "format")
    position = [0]

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith("'"):  # the driver unescapes %% everywhere, parameters nowhere here
            return token.replace("%%", "%") if escaped_percent else token
        if match.group(1) is not None:
            return literal(named[match.group(1)]) if match.group(1) in named else token
        if token == "%%":
            return "%" if escaped_percent else token
        if match.group(2) is not None:
            index = int(match.group(2)) - 1
            return literal(positional[index]) if 0 <= index < len(positional) else token
        placeholder = (token == "%s" and escaped_percent) or (
            token == "?" and paramstyle == "qmark"
        )
        if placeholder and position[0] < len(positional):
            position[0] += 1
            return literal(positional[position[0] - 1])
        return token

    text = _PLACEHOLDERS.sub(replace, statement.rstrip().rstrip(";"))
    note = f"  -- the first of {sets} parameter sets" if sets > 1 else ""
    return f"{text};{note}"


def literal(value: Any) -> str:
    """A SQL literal for display and lint: long values are shortened, and say so."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and not math.isfinite(value):
        return f"'{value}'"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        shown = data[: _LONGEST_LITERAL // 2].hex()
        return f"'\\x{shown}'" + (f" /* {len(data)} bytes */" if len(data) * 2 > len(shown) else "")
    text = str(value)
    if len(text) > _LONGEST_LITERAL:
        text = text[:_LONGEST_LITERAL] + f"... ({len(text)} characters)"
    return "'" + text.replace("'", "''") + "'"
