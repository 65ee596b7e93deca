"""Our analyzer: each statement's tables, lock mode, rewrite, scan, validation, data loss.

Lock modes follow the PostgreSQL documentation ("Explicit Locking", and each command's page).
The analyzer reads the parse tree, and the live catalog's column types and nullability when
the flow has a database (``columns``); table sizes are applied afterwards, in ``lint.py``.
Every statement type pglast knows is read by ``tables.py`` or ``kinds.py``, or named harmless
there; one it does not know is a finding of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import parse_sql
from pglast.parser import ParseError

from autopr_migrate.analysis import kinds, tables
from autopr_migrate.analysis.model import Statement, safe_step_of
from autopr_migrate.analysis.types import UTC_NAMES
from autopr_migrate.analysis.walk import ROW_EXCLUSIVE, ColumnFact, Hit, Walk


class LintError(ValueError):
    """The SQL could not be read: not PostgreSQL, or not text."""


@dataclass(frozen=True)
class Analysis:
    statements: list[Statement]
    hits: list[Hit]
    created: set[str]
    sources: dict[str, str]  # a table renamed by the script -> the name the database knows


def analyze(
    sql: str,
    *,
    lock_timeout_in_force: bool = False,
    columns: dict[tuple[str, str], ColumnFact] | None = None,
    utc_session: bool = False,
    version_table: str = "alembic_version",
) -> Analysis:
    """Read a SQL script statement by statement.

    Args:
        lock_timeout_in_force: whoever runs the SQL sets ``lock_timeout`` first.
        columns: the live database's columns; None when linting offline (facts unknown).
        utc_session: the session that migrates runs in UTC (``SHOW TimeZone``).
        version_table: the table the history records its revision in.

    Raises:
        LintError: the SQL holds a NUL character or does not parse as PostgreSQL.
    """
    if "\x00" in sql:
        raise LintError("the SQL holds a NUL character: it is not SQL text; nothing was linted")
    try:
        raws = parse_sql(sql)
    except ParseError as exc:
        raise LintError(f"not PostgreSQL SQL: {' '.join(str(exc).split())[:200]}") from None
    walk = Walk(
        lock_timeout_in_force,
        dict(columns or {}),
        catalog_known=columns is not None,
        utc_session=utc_session,
        version_table=version_table,
    )
    statements: list[Statement] = []
    previous_end = 0
    for number, raw in enumerate(raws, start=1):
        # pglast's locations count characters, not bytes
        end = raw.stmt_location + raw.stmt_len if raw.stmt_len else len(sql)
        leading, chunk = sql[previous_end : raw.stmt_location], sql[raw.stmt_location : end]
        previous_end = end
        line = sql[: raw.stmt_location].count("\n") + _first_code_line(chunk)
        statement = Statement(number, line, _strip_comments(chunk).strip(), type(raw.stmt).__name__)
        statement.safe_operation, statement.safe_step = safe_step_of(leading) or (None, None)
        visit(raw.stmt, statement, walk)
        statement.lock_timeout = walk.lock_timeout
        statement.in_transaction = walk.in_transaction
        statements.append(statement)
    return Analysis(statements, walk.hits, walk.created, walk.sources)


def visit(node, st: Statement, walk: Walk) -> None:
    kind = type(node).__name__
    handler = HANDLERS.get(kind)
    if handler is not None:
        handler(node, st, walk)
    elif kind not in kinds.HARMLESS:
        walk.hit(st, "unrecognized-statement", None, f"{kind} is new to the analyzer")


def _explain(node, st: Statement, walk: Walk) -> None:
    """``EXPLAIN ANALYZE`` runs its statement; plain ``EXPLAIN`` only plans it."""
    if any(getattr(option, "defname", "") == "analyze" for option in node.options or ()):
        visit(node.query, st, walk)


def _select(node, st: Statement, walk: Walk) -> None:
    """A query reads, but its WITH may hold an UPDATE, a DELETE or an INSERT that writes."""
    for cte in getattr(node.withClause, "ctes", None) or ():
        visit(cte.ctequery, st, walk)
    for side in (node.larg, node.rarg):
        if side is not None:
            _select(side, st, walk)


def _copy(node, st: Statement, walk: Walk) -> None:
    if node.query is not None:  # COPY (DELETE ... RETURNING ...) TO ...
        visit(node.query, st, walk)
    if node.is_program:
        walk.hit(
            st,
            "server-wide-change",
            None,
            "COPY ... PROGRAM runs a shell command on the database server",
        )
    if node.relation is not None and node.is_from:
        st.tables.append(tables.relation_name(node.relation))
        walk.lock(st, ROW_EXCLUSIVE)


def _create_enum(node, st: Statement, walk: Walk) -> None:
    walk.created.add(".".join(part.sval for part in node.typeName))


def _set(node, st: Statement, walk: Walk) -> None:
    """``SET``/``RESET`` of ``lock_timeout`` and the time zone, ``SET LOCAL`` until commit."""
    kind = node.kind.name
    if kind == "VAR_RESET_ALL":
        walk.lock_timeout = False  # back to the server's default, which is none
        return
    if node.name == "timezone" and kind == "VAR_SET_VALUE" and node.args:
        zone = getattr(node.args[0].val, "sval", None) or ""
        walk.utc_session = zone.strip().lower() in UTC_NAMES
        return
    if node.name != "lock_timeout":
        return
    if node.is_local and walk.lock_timeout_outside is None:
        walk.lock_timeout_outside = walk.lock_timeout
    if kind in ("VAR_RESET", "VAR_SET_DEFAULT") or not node.args:
        walk.lock_timeout = False
        return
    value = node.args[0].val
    setting = getattr(value, "sval", None) or str(getattr(value, "ival", "0"))
    walk.lock_timeout = _milliseconds(setting) != 0


def _milliseconds(setting: str) -> float:
    """``'2s'``, ``'0min'``, ``'500'``, ``'00'``: PostgreSQL's time units; unreadable is 0."""
    number = setting.strip().rstrip("abcdefghijklmnopqrstuvwxyz").strip()
    try:
        return float(number)
    except ValueError:
        return 0.0


def _transaction(node, st: Statement, walk: Walk) -> None:
    name = node.kind.name
    if name in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
        walk.in_transaction = True
    elif name in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK"):
        walk.in_transaction = bool(getattr(node, "chain", False))  # AND CHAIN opens the next
        if walk.lock_timeout_outside is not None:  # SET LOCAL ends with its transaction
            walk.lock_timeout, walk.lock_timeout_outside = walk.lock_timeout_outside, None


def _first_code_line(chunk: str) -> int:
    """Lines between where pglast says a statement starts and its first token."""
    for index, line in enumerate(chunk.splitlines()):
        if line.strip() and not line.strip().startswith("--"):
            return index
    return 0


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))


HANDLERS = {
    **tables.HANDLERS,
    **kinds.HANDLERS,
    "ExplainStmt": _explain,
    "SelectStmt": _select,
    "CopyStmt": _copy,
    "CreateEnumStmt": _create_enum,
    "VariableSetStmt": _set,
    "TransactionStmt": _transaction,
}
# Statement kinds our analyzer reads (or knows to be harmless): squawk cannot add to them.
ANALYZED_KINDS = frozenset(HANDLERS) | frozenset(kinds.HARMLESS)
