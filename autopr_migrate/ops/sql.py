"""SQL text of the safe operations: identifiers quoted as the revision's dialect quotes them,
index columns and expressions, names derived within PostgreSQL's 63 characters."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

_MAX_NAME = 63


def quote(name: str) -> str:
    return op.get_context().dialect.identifier_preparer.quote(name)


def qualified(name: str, schema: str | None) -> str:
    return f"{quote(schema)}.{quote(name)}" if schema else quote(name)


def column_list(columns: Sequence[str]) -> str:
    return ", ".join(quote(column) for column in columns)


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_ORDERED = re.compile(r"^(?P<base>.+?)(?P<order>(\s+(asc|desc))?(\s+nulls\s+(first|last))?)$", re.I)


def column_sql(column: str) -> str:
    """A column name (quoted where it must be), or an expression (in parentheses), either with
    its ASC/DESC and NULLS FIRST/LAST."""
    match = _ORDERED.match(column.strip())
    base, order = (match["base"], match["order"]) if match else (column, "")
    if _IDENTIFIER.match(base):
        return f"{quote(base)}{order}"
    if base.startswith("(") and base.endswith(")"):
        return f"{base}{order}"
    return f"({base}){order}"


def column_or_expression(column: str) -> str | sa.TextClause:
    return column if _IDENTIFIER.match(column) else sa.text(column)


def derived_name(base: str, suffix: str) -> str:
    name = f"{base}_{suffix}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{base[: _MAX_NAME - len(suffix) - 10]}_{digest}_{suffix}"
