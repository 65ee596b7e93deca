"""What statements on tables, columns, indexes and rows lock, rewrite, scan and destroy."""

from __future__ import annotations

from pglast.enums import AlterTableType as At
from pglast.enums import ConstrType, DropBehavior, ObjectType

from autopr_migrate.analysis.model import Statement
from autopr_migrate.analysis.types import narrows, parse_type, rewrites
from autopr_migrate.analysis.walk import (
    ACCESS_EXCLUSIVE,
    ROW_EXCLUSIVE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    ColumnFact,
    Walk,
)

# Defaults PostgreSQL 11+ cannot store in the catalog: every row gets its own value (a rewrite).
VOLATILE_FUNCTIONS = {
    "random",
    "gen_random_uuid",
    "uuid_generate_v4",
    "uuid_generate_v1",
    "uuidv4",
    "uuidv7",
    "clock_timestamp",
    "nextval",
    "timeofday",
    "txid_current",
    "random_normal",
    "setseed",
}
INTERVAL_ALL_FIELDS = 0x7FFF
SERIAL_TYPES = {"serial", "bigserial", "smallserial", "serial4", "serial8", "serial2"}
# ALTER TABLE subcommands that take less than ACCESS EXCLUSIVE (the ALTER TABLE page).
_WEAKER = {
    At.AT_SetStatistics: SHARE_UPDATE_EXCLUSIVE,
    At.AT_ClusterOn: SHARE_UPDATE_EXCLUSIVE,
    At.AT_DropCluster: SHARE_UPDATE_EXCLUSIVE,
    At.AT_SetRelOptions: SHARE_UPDATE_EXCLUSIVE,
    At.AT_ResetRelOptions: SHARE_UPDATE_EXCLUSIVE,
    At.AT_ValidateConstraint: SHARE_UPDATE_EXCLUSIVE,
    At.AT_AttachPartition: SHARE_UPDATE_EXCLUSIVE,
    At.AT_EnableTrig: SHARE_ROW_EXCLUSIVE,
    At.AT_DisableTrig: SHARE_ROW_EXCLUSIVE,
    At.AT_EnableTrigAll: SHARE_ROW_EXCLUSIVE,
    At.AT_DisableTrigAll: SHARE_ROW_EXCLUSIVE,
    At.AT_EnableTrigUser: SHARE_ROW_EXCLUSIVE,
    At.AT_DisableTrigUser: SHARE_ROW_EXCLUSIVE,
}
_REWRITING = {At.AT_SetTableSpace, At.AT_SetLogged, At.AT_SetUnLogged, At.AT_SetAccessMethod}
# Renaming these breaks the running release, which still uses the old name.
_USED_BY_NAME = {
    ObjectType.OBJECT_TABLE,
    ObjectType.OBJECT_COLUMN,
    ObjectType.OBJECT_VIEW,
    ObjectType.OBJECT_MATVIEW,
    ObjectType.OBJECT_SEQUENCE,
    ObjectType.OBJECT_TYPE,
    ObjectType.OBJECT_DOMAIN,
    ObjectType.OBJECT_FUNCTION,
    ObjectType.OBJECT_PROCEDURE,
    ObjectType.OBJECT_ROUTINE,
    ObjectType.OBJECT_AGGREGATE,
    ObjectType.OBJECT_SCHEMA,
    ObjectType.OBJECT_FOREIGN_TABLE,
    ObjectType.OBJECT_ATTRIBUTE,
}
_RELATIONS = {
    ObjectType.OBJECT_VIEW,
    ObjectType.OBJECT_MATVIEW,
    ObjectType.OBJECT_SEQUENCE,
    ObjectType.OBJECT_FOREIGN_TABLE,
}


def relation_name(range_var) -> str:
    """``users``, or ``archive.users`` when the statement names a schema (another table)."""
    schema = getattr(range_var, "schemaname", None)
    return f"{schema}.{range_var.relname}" if schema else range_var.relname


def type_text(type_name) -> str:
    """``varchar(50)``, ``int4[]``: a parsed type as ``autopr_migrate.analysis.types`` reads it."""
    name = ".".join(part.sval for part in type_name.names if part.sval != "pg_catalog")
    sizes = [
        str(getattr(m.val, "ival", ""))
        for m in type_name.typmods or ()
        if type(m).__name__ == "A_Const"
    ]
    if name == "interval" and sizes:
        # The first modifier is the field mask (DAY, HOUR TO SECOND...); 32767 is "all fields".
        mask, sizes = sizes[0], sizes[1:]
        if mask != str(INTERVAL_ALL_FIELDS):
            name = f"interval_fields_{mask}"  # restricted fields: never the same type as another
    arrays = "[]" * len(type_name.arrayBounds or ())
    return f"{name}({','.join(sizes)}){arrays}" if sizes else f"{name}{arrays}"


def create_table(node, st: Statement, walk: Walk) -> None:
    table = relation_name(node.relation)
    st.tables.append(table)
    columns: dict[str, ColumnFact] = {}
    keys: set[str] = set()
    for element in node.tableElts or ():
        if type(element).__name__ == "ColumnDef":
            required = any(
                c.contype in (ConstrType.CONSTR_NOTNULL, ConstrType.CONSTR_PRIMARY)
                for c in element.constraints or ()
            )
            columns[element.colname] = ColumnFact(type_text(element.typeName), required)
        for constraint in _constraints(element):
            if constraint.contype == ConstrType.CONSTR_PRIMARY:
                keys.update(key.sval for key in constraint.keys or ())
            if constraint.contype == ConstrType.CONSTR_FOREIGN and constraint.pktable:
                referenced = relation_name(constraint.pktable)
                st.tables.append(referenced)
                walk.lock(st, SHARE_ROW_EXCLUSIVE)
                walk.strong_lock(st, referenced)
    for key in keys & columns.keys():
        columns[key] = ColumnFact(columns[key].type, True)
    if not node.if_not_exists:  # IF NOT EXISTS may well find the big table that is there
        walk.create_table(table, columns)


def create_table_as(node, st: Statement, walk: Walk) -> None:
    table = relation_name(node.into.rel)
    st.tables.append(table)
    if not node.if_not_exists:
        walk.create_table(table, {})


def _constraints(element):
    if type(element).__name__ == "Constraint":
        return [element]
    return list(getattr(element, "constraints", None) or ())


def alter_table(node, st: Statement, walk: Walk) -> None:
    table = relation_name(node.relation)
    st.tables.append(table)
    for cmd in node.cmds or ():
        subtype = cmd.subtype
        if subtype == At.AT_AddConstraint and cmd.def_.contype == ConstrType.CONSTR_FOREIGN:
            _add_foreign_key(cmd.def_, table, st, walk)
            continue
        walk.lock(st, _WEAKER.get(subtype, ACCESS_EXCLUSIVE))
        if subtype == At.AT_ValidateConstraint:
            st.scans = st.validates = True
            walk.hit(st, "validate-constraint", table)
            walk.validate_check(table, cmd.name)
        elif subtype == At.AT_DropConstraint:
            walk.drop_check(table, cmd.name)
        elif subtype in (At.AT_AttachPartition, At.AT_DetachPartition):
            _partition(cmd.def_, table, st, walk, attach=subtype == At.AT_AttachPartition)
        elif subtype == At.AT_AddColumn:
            _add_column(cmd.def_, table, st, walk)
        elif subtype == At.AT_DropColumn:
            st.destroys_data = True
            walk.hit(st, "data-loss", table, f"drops column {table}.{cmd.name}")
            walk.columns.pop((table, cmd.name), None)
        elif subtype == At.AT_AlterColumnType:
            _change_type(cmd, table, st, walk)
        elif subtype == At.AT_SetNotNull:
            _set_not_null(table, cmd.name, st, walk)
        elif subtype == At.AT_DropNotNull:
            walk.update_column(table, cmd.name, not_null=False, proven_not_null=False)
        elif subtype == At.AT_AddConstraint:
            _add_constraint(cmd.def_, table, st, walk)
        elif subtype in _REWRITING:
            st.rewrites = True
            walk.hit(st, "table-rewrite", table)
    walk.strong_lock(st, table)


def _partition(partition, table: str, st: Statement, walk: Walk, *, attach: bool) -> None:
    child = relation_name(partition.name)
    st.tables.append(child)
    if attach:  # every row of the partition is checked against its bounds
        st.scans = st.validates = True
        if child not in walk.created:
            detail = f"ATTACH PARTITION checks every row of {child} against its bounds"
            walk.hit(st, "scan-under-access-exclusive", child, detail)
    elif partition.concurrent:
        walk.lock(st, SHARE_UPDATE_EXCLUSIVE)
        st.non_transactional = True
        if walk.in_transaction:
            walk.hit(st, "outside-transaction-only", table, "DETACH PARTITION CONCURRENTLY")
    else:
        walk.lock(st, ACCESS_EXCLUSIVE)


def _add_column(column, table: str, st: Statement, walk: Walk) -> None:
    constraints = column.constraints or ()
    default = next((c for c in constraints if c.contype == ConstrType.CONSTR_DEFAULT), None)
    not_null = any(
        c.contype in (ConstrType.CONSTR_NOTNULL, ConstrType.CONSTR_PRIMARY) for c in constraints
    )
    type_name = type_text(column.typeName)
    walk.columns[(table, column.colname)] = ColumnFact(type_name, not_null)
    filled = _filled_per_row(type_name, constraints, default)
    if not_null and default is None and not filled:
        walk.hit(
            st,
            "required-column-without-default",
            table,
            f"{table}.{column.colname} is NOT NULL without a default",
        )
    if filled:
        st.rewrites = True
        detail = f"{table}.{column.colname} {filled}: every row is rewritten"
        walk.hit(st, "table-rewrite", table, detail)
    for constraint in constraints:
        if constraint.contype in (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE):
            st.scans = True
            walk.hit(st, "unique-constraint-build", table)


def _change_type(cmd, table: str, st: Statement, walk: Walk) -> None:
    """A rewrite only where PostgreSQL does one; unknown offline: the worst case, said so."""
    column, new_text = cmd.name, type_text(cmd.def_.typeName)
    fact = walk.column(table, column)
    old, new = parse_type(fact.type) if fact and fact.type else None, parse_type(new_text)
    where = f"{table}.{column}"
    if cmd.def_.raw_default is not None:
        rewritten, detail = True, f"changes the type of {where} to {new_text} with USING"
    elif old is None or new is None:
        rewritten = True
        detail = (
            f"changes the type of {where} to {new_text}; its current type is unknown "
            f"here, so this assumes the worst (a rewrite)"
        )
    else:
        rewritten = rewrites(old, new, utc_session=walk.utc_session)
        detail = f"changes the type of {where} from {old} to {new}"
    if rewritten:
        st.rewrites = st.scans = True
        walk.hit(st, "table-rewrite", table, detail)
    if old is not None and new is not None and narrows(old, new):
        walk.hit(
            st,
            "data-loss",
            table,
            f"narrows {where} from {old} to {new}: values that do "
            f"not fit fail the statement or are cut",
        )
    walk.update_column(table, column, type=new_text)


def _set_not_null(table: str, column: str, st: Statement, walk: Walk) -> None:
    fact = walk.column(table, column)
    if fact is not None and (fact.not_null or fact.proven_not_null):
        walk.update_column(table, column, not_null=True)
        return  # already NOT NULL, or a validated CHECK proves it: PostgreSQL scans nothing
    st.scans = st.validates = True
    unknown = (
        " (unknown here whether it is NOT NULL already)"
        if fact is None or fact.not_null is None
        else ""
    )
    walk.hit(
        st,
        "scan-under-access-exclusive",
        table,
        f"SET NOT NULL on {table}.{column} checks every row{unknown}",
    )
    walk.update_column(table, column, not_null=True)


def _filled_per_row(type_name: str, constraints, default) -> str | None:
    """Why PostgreSQL must write a value into every existing row, or None.

    A constant (or stable, like ``now()``) default is stored once in the catalog (PostgreSQL
    11+); a serial, an identity, a stored generated column or a volatile default is not.
    """
    if type_name.split("(")[0] in SERIAL_TYPES:
        return f"is a {type_name} (a sequence value per row)"
    kinds = {c.contype for c in constraints}
    if ConstrType.CONSTR_IDENTITY in kinds:
        return "is an identity column (a sequence value per row)"
    if ConstrType.CONSTR_GENERATED in kinds:
        return "is a stored generated column (computed for every row)"
    if default is not None and _calls_volatile(default.raw_expr):
        return "gets a volatile default"
    return None


def _calls_volatile(expr) -> bool:
    """Whether a volatile function is called anywhere in the expression."""
    stack = [expr(skip_none=True)] if expr is not None else []
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("@") == "FuncCall":
                name = item["funcname"][-1].get("sval", "")
                if name.lower() in VOLATILE_FUNCTIONS:
                    return True
            stack.extend(item.values())
        elif isinstance(item, tuple | list):
            stack.extend(item)
    return False


def _add_constraint(constraint, table: str, st: Statement, walk: Walk) -> None:
    if constraint.contype == ConstrType.CONSTR_CHECK:
        column = _not_null_check(constraint.raw_expr)
        if column and constraint.conname:
            walk.add_not_null_check(
                table, constraint.conname, column, validated=not constraint.skip_validation
            )
        if constraint.skip_validation:
            return
        if table not in walk.created:
            st.scans = st.validates = True
            walk.hit(st, "scan-under-access-exclusive", table, f"CHECK {constraint.conname or ''}")
    elif (
        constraint.contype
        in (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_EXCLUSION)
        and not constraint.indexname  # USING INDEX reuses a concurrently built index
    ):
        st.scans = True
        if table not in walk.created:
            walk.hit(st, "unique-constraint-build", table)


def _not_null_check(expr) -> str | None:
    """The column of ``CHECK (column IS NOT NULL)``, else None."""
    if type(expr).__name__ != "NullTest" or expr.nulltesttype.name != "IS_NOT_NULL":
        return None
    if type(expr.arg).__name__ != "ColumnRef":
        return None
    return expr.arg.fields[-1].sval


def _add_foreign_key(constraint, table: str, st: Statement, walk: Walk) -> None:
    referenced = relation_name(constraint.pktable)
    st.tables.append(referenced)
    walk.lock(st, SHARE_ROW_EXCLUSIVE)
    if not constraint.skip_validation and table not in walk.created:
        st.scans = st.validates = True
        walk.hit(st, "foreign-key-validation", table, f"references {referenced}")
    walk.strong_lock(st, table)


def create_index(node, st: Statement, walk: Walk) -> None:
    table = relation_name(node.relation)
    st.tables.append(table)
    if node.concurrent:
        walk.lock(st, SHARE_UPDATE_EXCLUSIVE)
        concurrently(st, walk, table)
        return
    walk.lock(st, SHARE)
    st.scans = True
    if table not in walk.created:
        walk.hit(st, "blocking-index", table)
    walk.strong_lock(st, table)


def concurrently(st: Statement, walk: Walk, table: str | None) -> None:
    st.non_transactional = True
    rule = "concurrently-in-transaction" if walk.in_transaction else "non-transactional"
    walk.hit(st, rule, table)


def drop(node, st: Statement, walk: Walk) -> None:
    names = [
        ".".join(getattr(part, "sval", "?") for part in obj)
        if isinstance(obj, tuple)
        else getattr(obj, "sval", None) or type(obj).__name__
        for obj in node.objects or ()
    ]
    kind = node.removeType
    if node.behavior == DropBehavior.DROP_CASCADE:
        for name in names:
            walk.hit(st, "drop-cascade", name, f"drops {name} and everything that depends on it")
    if kind == ObjectType.OBJECT_TABLE:
        walk.lock(st, ACCESS_EXCLUSIVE)
        for name in names:
            st.tables.append(name)
            st.destroys_data = True
            walk.hit(st, "data-loss", name, f"drops table {name}")
            walk.strong_lock(st, name)
            walk.drop_table(name)
    elif kind == ObjectType.OBJECT_INDEX:
        st.tables.extend(names)
        if node.concurrent:
            walk.lock(st, SHARE_UPDATE_EXCLUSIVE)
            concurrently(st, walk, None)
        else:
            walk.lock(st, ACCESS_EXCLUSIVE)
            for name in names:
                walk.hit(st, "blocking-index-drop", name)
                walk.strong_lock(st, name)
    else:
        what = kind.name.removeprefix("OBJECT_").replace("_", " ").lower()
        if kind in _RELATIONS:
            walk.lock(st, ACCESS_EXCLUSIVE)
        for name in names:
            if name not in walk.created:
                walk.hit(st, "drop-object", name, f"drops {what} {name}")


def truncate(node, st: Statement, walk: Walk) -> None:
    walk.lock(st, ACCESS_EXCLUSIVE)
    for relation in node.relations:
        table = relation_name(relation)
        st.tables.append(table)
        st.destroys_data = True
        walk.hit(st, "data-loss", table, f"truncates {table}")
        if node.behavior == DropBehavior.DROP_CASCADE:
            walk.hit(st, "drop-cascade", table, f"truncates every table referencing {table}")
        walk.strong_lock(st, table)


def rename(node, st: Statement, walk: Walk) -> None:
    kind = node.renameType
    table = relation_name(node.relation) if node.relation is not None else None
    if table:
        st.tables.append(table)
        walk.lock(st, ACCESS_EXCLUSIVE)
    if kind == ObjectType.OBJECT_COLUMN and table:
        walk.rename_column(table, node.subname, node.newname)
    if kind == ObjectType.OBJECT_TABCONSTRAINT and table:
        walk.rename_check(table, node.subname, node.newname)
    old = table or _object_name(node.object)
    if kind in _USED_BY_NAME and old not in walk.created:
        walk.hit(st, "breaking-rename", table, f"{node.subname or old} -> {node.newname}")
    if kind == ObjectType.OBJECT_TABLE and table:
        walk.rename_table(table, node.newname)
    walk.strong_lock(st, table)


def move_to_schema(node, st: Statement, walk: Walk) -> None:
    """``SET SCHEMA``: the running release's unqualified names stop finding the object."""
    table = relation_name(node.relation) if node.relation is not None else None
    name = table or _object_name(node.object)
    if table:
        st.tables.append(table)
        walk.lock(st, ACCESS_EXCLUSIVE)
    if node.objectType in _USED_BY_NAME | _RELATIONS and name not in walk.created:
        walk.hit(st, "breaking-rename", table, f"{name} moves to schema {node.newschema}")
    walk.strong_lock(st, table)


def _object_name(obj) -> str:
    if obj is None:
        return "?"
    if isinstance(obj, tuple):
        return ".".join(getattr(part, "sval", "?") for part in obj)
    if hasattr(obj, "sval"):
        return obj.sval
    names = getattr(obj, "objname", None) or getattr(obj, "names", None)
    return _object_name(names) if names else type(obj).__name__


def change_rows(node, st: Statement, walk: Walk) -> None:
    """UPDATE, DELETE, MERGE: row locks on every row changed, until the revision commits."""
    table = relation_name(node.relation)
    st.tables.append(table)
    walk.lock(st, ROW_EXCLUSIVE)
    if table in walk.created or table == walk.version_table:
        return
    where = getattr(node, "whereClause", None)
    if type(node).__name__ == "DeleteStmt" and where is None:
        st.destroys_data = True
        walk.hit(st, "data-loss", table, f"deletes every row of {table}")
    if where is None:
        walk.hit(st, "unbatched-backfill", table, f"changes every row of {table}")
    elif not _key_lookup(where):
        walk.hit(
            st,
            "unbatched-backfill",
            table,
            f"changes the rows of {table} its WHERE matches, possibly many",
        )


def _key_lookup(where) -> bool:
    """A handful of rows, not a backfill: ``id`` equal to, in, or between constants."""
    if type(where).__name__ == "BoolExpr" and where.boolop.name == "AND_EXPR":
        bounds = {_id_bound(arg) for arg in where.args}
        return {"lower", "upper"} <= bounds or "exact" in bounds
    return _id_bound(where) in ("exact", "range")


def _id_bound(expr) -> str | None:
    if type(expr).__name__ != "A_Expr" or type(expr.lexpr).__name__ != "ColumnRef":
        return None
    if getattr(expr.lexpr.fields[-1], "sval", None) != "id":
        return None
    values = expr.rexpr if isinstance(expr.rexpr, tuple) else (expr.rexpr,)
    if not all(type(value).__name__ == "A_Const" for value in values):
        return None
    kind, operator = expr.kind.name, expr.name[-1].sval
    if kind == "AEXPR_BETWEEN":
        return "range"
    if kind in ("AEXPR_OP", "AEXPR_IN") and operator == "=":
        return "exact"
    if kind == "AEXPR_OP" and operator in (">", ">="):
        return "lower"
    if kind == "AEXPR_OP" and operator in ("<", "<="):
        return "upper"
    return None


def insert(node, st: Statement, walk: Walk) -> None:
    st.tables.append(relation_name(node.relation))
    walk.lock(st, ROW_EXCLUSIVE)


HANDLERS = {
    "CreateStmt": create_table,
    "CreateTableAsStmt": create_table_as,
    "AlterTableStmt": alter_table,
    "IndexStmt": create_index,
    "DropStmt": drop,
    "TruncateStmt": truncate,
    "RenameStmt": rename,
    "AlterObjectSchemaStmt": move_to_schema,
    "UpdateStmt": change_rows,
    "DeleteStmt": change_rows,
    "MergeStmt": change_rows,
    "InsertStmt": insert,
}
