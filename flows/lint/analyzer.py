"""Our analyzer: each statement's tables, lock mode, rewrite, scan, validation, data loss.

Lock modes follow the PostgreSQL documentation ("Explicit Locking", and each command's page).
The analyzer reads the parse tree only; table sizes and column types come from the database,
when there is one, in ``flows.lint.lint``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import parse_sql
from pglast.enums import AlterTableType as At
from pglast.enums import ConstrType, ObjectType
from pglast.parser import ParseError

from flows.lint.model import Statement

ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
SHARE = "SHARE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
LOCK_STRENGTH = (None, ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE,
                 ACCESS_EXCLUSIVE)  # fmt: skip
BLOCKING = {SHARE, SHARE_ROW_EXCLUSIVE, ACCESS_EXCLUSIVE}
# Defaults PostgreSQL 11+ cannot store in the catalog: every row gets its own value (a rewrite).
VOLATILE_FUNCTIONS = {"random", "gen_random_uuid", "uuid_generate_v4", "clock_timestamp",
                      "nextval", "timeofday", "txid_current"}  # fmt: skip


class LintError(ValueError):
    """The SQL could not be parsed as PostgreSQL."""


@dataclass(frozen=True)
class Hit:
    """A rule that matched a statement, before sizes decide how severe it is."""

    statement: int
    rule: str
    table: str | None
    detail: str = ""


@dataclass(frozen=True)
class TypeChange:
    statement: int
    table: str
    column: str
    new_type: str


@dataclass
class _State:
    lock_timeout: bool
    in_transaction: bool = False


def analyze(sql: str, *, lock_timeout_in_force: bool = False):
    """(statements, hits, type changes, tables created by the script) for a SQL script."""
    try:
        raws = parse_sql(sql)
    except ParseError as exc:
        raise LintError(f"not PostgreSQL SQL: {exc}") from None
    encoded = sql.encode()
    state = _State(lock_timeout_in_force)
    statements: list[Statement] = []
    hits: list[Hit] = []
    changes: list[TypeChange] = []
    created: set[str] = set()
    for number, raw in enumerate(raws, start=1):
        end = raw.stmt_location + raw.stmt_len if raw.stmt_len else len(encoded)
        chunk = encoded[raw.stmt_location : end].decode()
        line = encoded[: raw.stmt_location].count(b"\n") + _first_code_line(chunk)
        statement = Statement(number, line, _strip_comments(chunk).strip(), type(raw.stmt).__name__)
        _visit(raw.stmt, statement, state, hits, changes, created)
        statement.lock_timeout = state.lock_timeout
        statement.in_transaction = state.in_transaction
        statements.append(statement)
    return statements, hits, changes, created


def _first_code_line(chunk: str) -> int:
    """Lines between where pglast says a statement starts and its first token."""
    for index, line in enumerate(chunk.splitlines()):
        if line.strip() and not line.strip().startswith("--"):
            return index
    return 0


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))


def _relation(range_var) -> str:
    return range_var.relname


def _visit(node, st: Statement, state: _State, hits: list[Hit], changes: list[TypeChange],
           created: set[str]) -> None:  # fmt: skip
    kind = type(node).__name__
    handler = _HANDLERS.get(kind)
    if handler:
        handler(node, st, state, hits, changes, created)


def _hit(hits: list[Hit], st: Statement, rule: str, table: str | None, detail: str = "") -> None:
    hits.append(Hit(st.number, rule, table, detail))


def _lock(st: Statement, mode: str) -> None:
    if LOCK_STRENGTH.index(mode) > LOCK_STRENGTH.index(st.lock):
        st.lock = mode


def _strong_lock(st: Statement, state: _State, hits: list[Hit], table: str, created: set[str]):
    if st.lock in BLOCKING and not state.lock_timeout and table not in created:
        _hit(hits, st, "missing-lock-timeout", table)


def _create_table(node, st, state, hits, changes, created) -> None:
    table = _relation(node.relation)
    st.tables.append(table)
    created.add(table)
    for element in node.tableElts or ():
        for constraint in _constraints(element):
            if constraint.contype == ConstrType.CONSTR_FOREIGN and constraint.pktable:
                referenced = _relation(constraint.pktable)
                st.tables.append(referenced)
                _lock(st, SHARE_ROW_EXCLUSIVE)
                _strong_lock(st, state, hits, referenced, created)


def _constraints(element):
    if type(element).__name__ == "Constraint":
        return [element]
    return list(getattr(element, "constraints", None) or ())


def _alter_table(node, st, state, hits, changes, created) -> None:
    table = _relation(node.relation)
    st.tables.append(table)
    for cmd in node.cmds or ():
        subtype = cmd.subtype
        if subtype == At.AT_ValidateConstraint:
            _lock(st, SHARE_UPDATE_EXCLUSIVE)
            st.scans = st.validates = True
            _hit(hits, st, "validate-constraint", table)
            continue
        if subtype == At.AT_AddConstraint and cmd.def_.contype == ConstrType.CONSTR_FOREIGN:
            _add_foreign_key(cmd.def_, table, st, state, hits, created)
            continue
        _lock(st, ACCESS_EXCLUSIVE)
        if subtype == At.AT_AddColumn:
            _add_column(cmd.def_, table, st, hits)
        elif subtype == At.AT_DropColumn:
            st.destroys_data = True
            _hit(hits, st, "data-loss", table, f"drops column {table}.{cmd.name}")
        elif subtype == At.AT_AlterColumnType:
            st.rewrites = st.scans = True
            new_type = _type_name(cmd.def_.typeName)
            changes.append(TypeChange(st.number, table, cmd.name, new_type))
            _hit(hits, st, "table-rewrite", table, f"changes the type of {table}.{cmd.name}")
        elif subtype == At.AT_SetNotNull:
            st.scans = st.validates = True
            _hit(hits, st, "scan-under-access-exclusive", table,
                 f"SET NOT NULL on {table}.{cmd.name} checks every row")  # fmt: skip
        elif subtype == At.AT_AddConstraint:
            _add_constraint(cmd.def_, table, st, hits)
        elif subtype in (At.AT_SetTableSpace, At.AT_SetLogged, At.AT_SetUnLogged,
                         At.AT_SetAccessMethod):  # fmt: skip
            st.rewrites = True
            _hit(hits, st, "table-rewrite", table)
    _strong_lock(st, state, hits, table, created)


def _add_column(column, table: str, st: Statement, hits: list[Hit]) -> None:
    constraints = column.constraints or ()
    default = next((c for c in constraints if c.contype == ConstrType.CONSTR_DEFAULT), None)
    not_null = any(c.contype == ConstrType.CONSTR_NOTNULL for c in constraints)
    if not_null and default is None:
        _hit(hits, st, "required-column-without-default", table,
             f"{table}.{column.colname} is NOT NULL without a default")  # fmt: skip
    if default is not None and _is_volatile(default.raw_expr):
        st.rewrites = True
        detail = f"{table}.{column.colname} gets a volatile default: every row is rewritten"
        _hit(hits, st, "table-rewrite", table, detail)
    for constraint in constraints:
        if constraint.contype in (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE):
            st.scans = True
            _hit(hits, st, "unique-constraint-build", table)


def _type_name(type_name) -> str:
    name = ".".join(part.sval for part in type_name.names if part.sval != "pg_catalog")
    sizes = [str(getattr(m.val, "ival", "")) for m in type_name.typmods or ()
             if type(m).__name__ == "A_Const"]  # fmt: skip
    return f"{name}({','.join(sizes)})" if sizes else name


def _is_volatile(expr) -> bool:
    if type(expr).__name__ == "FuncCall":
        return expr.funcname[-1].sval in VOLATILE_FUNCTIONS
    if type(expr).__name__ == "TypeCast":
        return _is_volatile(expr.arg)
    return False


def _add_constraint(constraint, table: str, st: Statement, hits: list[Hit]) -> None:
    if constraint.contype == ConstrType.CONSTR_CHECK and not constraint.skip_validation:
        st.scans = st.validates = True
        _hit(hits, st, "scan-under-access-exclusive", table, f"CHECK {constraint.conname or ''}")
    elif (
        constraint.contype in (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE)
        and not constraint.indexname  # USING INDEX reuses a concurrently built index
    ):
        st.scans = True
        _hit(hits, st, "unique-constraint-build", table)


def _add_foreign_key(constraint, table: str, st: Statement, state: _State, hits: list[Hit],
                     created: set[str]) -> None:  # fmt: skip
    referenced = _relation(constraint.pktable)
    st.tables.append(referenced)
    _lock(st, SHARE_ROW_EXCLUSIVE)
    if not constraint.skip_validation and table not in created:
        st.scans = st.validates = True
        _hit(hits, st, "foreign-key-validation", table, f"references {referenced}")
    _strong_lock(st, state, hits, table, created)


def _index(node, st, state, hits, changes, created) -> None:
    table = _relation(node.relation)
    st.tables.append(table)
    if node.concurrent:
        _lock(st, SHARE_UPDATE_EXCLUSIVE)
        _concurrent(st, state, hits, table)
        return
    _lock(st, SHARE)
    st.scans = True
    if table not in created:
        _hit(hits, st, "blocking-index", table)
    _strong_lock(st, state, hits, table, created)


def _concurrent(st: Statement, state: _State, hits: list[Hit], table: str | None) -> None:
    st.non_transactional = True
    rule = "concurrently-in-transaction" if state.in_transaction else "non-transactional"
    _hit(hits, st, rule, table)


def _drop(node, st, state, hits, changes, created) -> None:
    names = [".".join(part.sval for part in obj) for obj in node.objects or ()
             if isinstance(obj, tuple)]  # fmt: skip
    if node.removeType == ObjectType.OBJECT_TABLE:
        _lock(st, ACCESS_EXCLUSIVE)
        for name in names:
            st.tables.append(name)
            st.destroys_data = True
            _hit(hits, st, "data-loss", name, f"drops table {name}")
            _strong_lock(st, state, hits, name, created)
    elif node.removeType == ObjectType.OBJECT_INDEX:
        st.tables.extend(names)
        if node.concurrent:
            _lock(st, SHARE_UPDATE_EXCLUSIVE)
            _concurrent(st, state, hits, None)
        else:
            _lock(st, ACCESS_EXCLUSIVE)
            for name in names:
                _hit(hits, st, "blocking-index-drop", name)


def _truncate(node, st, state, hits, changes, created) -> None:
    _lock(st, ACCESS_EXCLUSIVE)
    for relation in node.relations:
        table = _relation(relation)
        st.tables.append(table)
        st.destroys_data = True
        _hit(hits, st, "data-loss", table, f"truncates {table}")
        _strong_lock(st, state, hits, table, created)


def _rename(node, st, state, hits, changes, created) -> None:
    if node.renameType not in (ObjectType.OBJECT_COLUMN, ObjectType.OBJECT_TABLE):
        return
    table = _relation(node.relation)
    st.tables.append(table)
    _lock(st, ACCESS_EXCLUSIVE)
    if table not in created:
        _hit(hits, st, "breaking-rename", table, f"{node.subname or table} -> {node.newname}")
    _strong_lock(st, state, hits, table, created)


def _update_or_delete(node, st, state, hits, changes, created) -> None:
    table = _relation(node.relation)
    st.tables.append(table)
    _lock(st, ROW_EXCLUSIVE)
    if node.whereClause is None and table not in created:
        if type(node).__name__ == "DeleteStmt":
            st.destroys_data = True
            _hit(hits, st, "data-loss", table, f"deletes every row of {table}")
        _hit(hits, st, "unbatched-backfill", table)


def _insert(node, st, state, hits, changes, created) -> None:
    st.tables.append(_relation(node.relation))
    _lock(st, ROW_EXCLUSIVE)


def _vacuum(node, st, state, hits, changes, created) -> None:
    full = any(getattr(o, "defname", "") == "full" for o in node.options or ())
    if not full and type(node).__name__ != "ClusterStmt":
        return
    _lock(st, ACCESS_EXCLUSIVE)
    st.rewrites = True
    relations = [r.relation for r in getattr(node, "rels", None) or ()] or (
        [node.relation] if getattr(node, "relation", None) else [])  # fmt: skip
    for relation in relations:
        table = _relation(relation)
        st.tables.append(table)
        _hit(hits, st, "table-rewrite", table)
        _strong_lock(st, state, hits, table, created)


def _set(node, st, state, hits, changes, created) -> None:
    if node.name != "lock_timeout":
        return
    value = node.args[0].val if node.args else None
    setting = getattr(value, "sval", None) or str(getattr(value, "ival", "0"))
    state.lock_timeout = setting.strip().rstrip("ms").strip() not in ("0", "")


def _transaction(node, st, state, hits, changes, created) -> None:
    name = node.kind.name
    if name in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
        state.in_transaction = True
    elif name in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK"):
        state.in_transaction = False


_HANDLERS = {
    "CreateStmt": _create_table,
    "AlterTableStmt": _alter_table,
    "IndexStmt": _index,
    "DropStmt": _drop,
    "TruncateStmt": _truncate,
    "RenameStmt": _rename,
    "UpdateStmt": _update_or_delete,
    "DeleteStmt": _update_or_delete,
    "InsertStmt": _insert,
    "VacuumStmt": _vacuum,
    "ClusterStmt": _vacuum,
    "VariableSetStmt": _set,
    "TransactionStmt": _transaction,
}

ANALYZED_KINDS = frozenset(_HANDLERS)
