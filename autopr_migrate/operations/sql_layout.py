"""Lay SQL out for a narrow, non-wrapping dialog: one clause per line, no line too long.

The Prefect resume dialog is about 512 px wide and scrolls code sideways instead of wrapping,
so a reviewer could miss the end of a long ALTER. pglast pretty-prints PostgreSQL; whatever it
cannot parse is wrapped at spaces. Alembic's bookkeeping (BEGIN, COMMIT, alembic_version) is
left out here; the plan artifact keeps the SQL exactly as it runs.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

from pglast import prettify, split
from pglast.parser import ParseError

WIDTH = 60
_REVISION = re.compile(r"^-- Running (?:upgrade|downgrade) (\S*) -> (\S+)", re.MULTILINE)
_TRANSACTION = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK)\b", re.IGNORECASE)


@dataclass
class RevisionSQL:
    revision: str
    statements: list[str] = field(default_factory=list)


def by_revision(sql: str, *, version_table: str = "alembic_version") -> list[RevisionSQL]:
    """The statements of a rendered upgrade, grouped by the revision that runs them; Alembic's
    bookkeeping (transactions, the version table) left out."""
    parts = _REVISION.split(sql)
    groups: list[RevisionSQL] = []
    # split() yields: preamble, (from, to, body) * n
    for index in range(1, len(parts), 3):
        body = parts[index + 2]
        statements = [
            s for s in _statements(body) if not _TRANSACTION.search(s) and version_table not in s
        ]
        groups.append(RevisionSQL(parts[index + 1], statements))
    return groups


def _statements(body: str) -> list[str]:
    text = "\n".join(line for line in body.splitlines() if not line.strip().startswith("--"))
    try:
        return [s.strip() for s in split(text) if s.strip()]
    except ParseError:
        return [s.strip() for s in text.split(";\n") if s.strip()]


def layout(statement: str, *, width: int = WIDTH) -> str:
    """One statement, pretty-printed where possible, no line longer than ``width``."""
    try:
        pretty = prettify(statement, compact_lists_margin=width)
    except (ParseError, ValueError, NotImplementedError):
        pretty = statement
    lines: list[str] = []
    for line in pretty.rstrip(";").splitlines():
        indent = len(line) - len(line.lstrip())
        lines += textwrap.wrap(
            line,
            width=width,
            subsequent_indent=" " * (indent + 4),
            break_long_words=False,
            break_on_hyphens=False,
        ) or [""]
    return "\n".join(lines) + ";"
