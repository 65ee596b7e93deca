"""Every other statement type: what each one locks or risks, or why it is harmless.

Together with ``tables.py`` this covers every statement node pglast knows; a test walks
``pglast.ast`` and fails on a type that is neither read here nor named in ``HARMLESS``.
"""

from __future__ import annotations

from autopr_migrate.analysis.model import Statement
from autopr_migrate.analysis.tables import concurrently, relation_name
from autopr_migrate.analysis.walk import (
    ACCESS_EXCLUSIVE,
    ACCESS_SHARE,
    BLOCKING,
    EXCLUSIVE,
    ROW_EXCLUSIVE,
    ROW_SHARE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    Walk,
)

# LOCK TABLE's mode numbers, as PostgreSQL's lockdefs.h numbers them.
_LOCK_MODES = {
    1: ACCESS_SHARE,
    2: ROW_SHARE,
    3: ROW_EXCLUSIVE,
    4: SHARE_UPDATE_EXCLUSIVE,
    5: SHARE,
    6: SHARE_ROW_EXCLUSIVE,
    7: EXCLUSIVE,
    8: ACCESS_EXCLUSIVE,
}
EVERY_TABLE = "large"  # the size tier of a statement over every table of a database

HARMLESS = {
    # Reads, session state and cursors: no lock beyond what a query takes.
    "VariableShowStmt": "reads a setting",
    "DiscardStmt": "session state",
    "PrepareStmt": "session state",
    "DeallocateStmt": "session state",
    "DeclareCursorStmt": "a cursor",
    "FetchStmt": "a cursor",
    "ClosePortalStmt": "a cursor",
    "ListenStmt": "notifications",
    "NotifyStmt": "notifications",
    "UnlistenStmt": "notifications",
    "ConstraintsSetStmt": "session state",
    "CheckPointStmt": "server housekeeping",
    "LoadStmt": "loads a library into the session",
    # New objects nothing uses yet, and catalog-only changes.
    "CreateSchemaStmt": "a new schema",
    "CreateSeqStmt": "a new sequence",
    "AlterSeqStmt": "sequence options",
    "ViewStmt": "a view (replacing one keeps its columns)",
    "CreateFunctionStmt": "a function",
    "AlterFunctionStmt": "function options",
    "CreateDomainStmt": "a new domain",
    "CreateRangeStmt": "a new range type",
    "CompositeTypeStmt": "a new composite type",
    "DefineStmt": "a new aggregate, operator or type",
    "CreateExtensionStmt": "an extension",
    "AlterExtensionContentsStmt": "extension membership",
    "CommentStmt": "a comment",
    "SecLabelStmt": "a security label",
    "CreateStatsStmt": "extended statistics",
    "AlterStatsStmt": "extended statistics",
    "AlterOwnerStmt": "an owner",
    "AlterObjectDependsStmt": "an extension dependency",
    "AlterDefaultPrivilegesStmt": "privileges of future objects",
    "CreateCastStmt": "a cast",
    "CreateConversionStmt": "a conversion",
    "CreateTransformStmt": "a transform",
    "CreatePLangStmt": "a language",
    "CreateAmStmt": "an access method",
    "CreateOpClassStmt": "an operator class",
    "CreateOpFamilyStmt": "an operator family",
    "AlterOpFamilyStmt": "an operator family",
    "AlterOperatorStmt": "operator options",
    "AlterCollationStmt": "a collation version",
    "AlterTypeStmt": "a base type's options",
    "AlterTSConfigurationStmt": "text search",
    "AlterTSDictionaryStmt": "text search",
    "CreateFdwStmt": "foreign data",
    "AlterFdwStmt": "foreign data",
    "CreateForeignServerStmt": "foreign data",
    "AlterForeignServerStmt": "foreign data",
    "CreateForeignTableStmt": "a new foreign table",
    "ImportForeignSchemaStmt": "foreign data",
    "CreateUserMappingStmt": "foreign data",
    "AlterUserMappingStmt": "foreign data",
    "DropUserMappingStmt": "foreign data",
    "CreatePublicationStmt": "replication",
    "AlterPublicationStmt": "replication",
    "CreateSubscriptionStmt": "replication",
    "AlterSubscriptionStmt": "replication",
    "DropSubscriptionStmt": "replication",
    "CreateEventTrigStmt": "an event trigger",
    "AlterEventTrigStmt": "an event trigger",
    "AlterDatabaseRefreshCollStmt": "a collation version",
    # Never statements of their own: parts of others, or PL/pgSQL.
    "RawStmt": "a wrapper",
    "SetOperationStmt": "part of a SELECT",
    "PLAssignStmt": "PL/pgSQL",
    "ReturnStmt": "PL/pgSQL",
}


def explicit_lock(node, st: Statement, walk: Walk) -> None:
    mode = _LOCK_MODES.get(node.mode, ACCESS_EXCLUSIVE)
    walk.lock(st, mode)
    for relation in node.relations or ():
        table = relation_name(relation)
        st.tables.append(table)
        if mode in BLOCKING and table not in walk.created:
            waits = "reads and writes" if mode == ACCESS_EXCLUSIVE else "writes"
            walk.hit(
                st,
                "explicit-lock",
                table,
                f"LOCK {table} IN {mode} MODE: {waits} wait until the transaction ends",
            )
        walk.strong_lock(st, table)


def reindex(node, st: Statement, walk: Walk) -> None:
    is_concurrent = any(p.defname == "concurrently" for p in node.params or ())
    table = relation_name(node.relation) if node.relation is not None else None
    scope = node.kind.name.removeprefix("REINDEX_OBJECT_").lower()
    tier = EVERY_TABLE if table is None else None
    if table:
        st.tables.append(table)
    if table is None and walk.in_transaction:
        walk.hit(st, "outside-transaction-only", None, f"REINDEX {scope.upper()}")
    if is_concurrent:
        walk.lock(st, SHARE_UPDATE_EXCLUSIVE)
        concurrently(st, walk, table)
        return
    walk.lock(st, SHARE)
    st.scans = True
    walk.hit(
        st, "reindex", table, f"rebuilds the indexes of {scope} {table or node.name}", tier=tier
    )
    walk.strong_lock(st, table)


def cluster(node, st: Statement, walk: Walk) -> None:
    walk.lock(st, ACCESS_EXCLUSIVE)
    st.rewrites = st.scans = True
    if node.relation is None:
        walk.hit(
            st,
            "table-rewrite",
            None,
            "CLUSTER rewrites every table clustered before",
            tier=EVERY_TABLE,
        )
        return
    table = relation_name(node.relation)
    st.tables.append(table)
    walk.hit(st, "table-rewrite", table, f"CLUSTER rewrites {table} in index order")
    walk.strong_lock(st, table)


def vacuum(node, st: Statement, walk: Walk) -> None:
    options = {getattr(option, "defname", "") for option in node.options or ()}
    tables = [relation_name(r.relation) for r in node.rels or () if r.relation is not None]
    st.tables.extend(tables)
    if not node.is_vacuumcmd:  # ANALYZE
        walk.lock(st, SHARE_UPDATE_EXCLUSIVE)
        return
    if walk.in_transaction:
        walk.hit(st, "outside-transaction-only", tables[0] if tables else None, "VACUUM")
    if "full" not in options:
        walk.lock(st, SHARE_UPDATE_EXCLUSIVE)
        return
    walk.lock(st, ACCESS_EXCLUSIVE)
    st.rewrites = True
    if not tables:
        walk.hit(st, "table-rewrite", None, "VACUUM FULL rewrites every table", tier=EVERY_TABLE)
    for table in tables:
        walk.hit(st, "table-rewrite", table, f"VACUUM FULL rewrites {table}")
        walk.strong_lock(st, table)


def move_all_tables(node, st: Statement, walk: Walk) -> None:
    walk.lock(st, ACCESS_EXCLUSIVE)
    st.rewrites = True
    detail = (
        f"moves every table of tablespace {node.orig_tablespacename} to {node.new_tablespacename}"
    )
    walk.hit(st, "table-rewrite", None, detail, tier=EVERY_TABLE)


def refresh_view(node, st: Statement, walk: Walk) -> None:
    view = relation_name(node.relation)
    st.tables.append(view)
    if node.concurrent:
        walk.lock(st, EXCLUSIVE)  # reads go on
        return
    walk.lock(st, ACCESS_EXCLUSIVE)
    st.scans = True
    if view not in walk.created:
        walk.hit(st, "matview-refresh", view)
    walk.strong_lock(st, view)


def add_enum_value(node, st: Statement, walk: Walk) -> None:
    name = ".".join(part.sval for part in node.typeName)
    if node.oldVal:
        walk.hit(st, "breaking-rename", None, f"enum {name} value {node.oldVal} -> {node.newVal}")
    elif name not in walk.created:
        walk.hit(st, "irreversible-enum-value", None, f"adds {node.newVal!r} to enum {name}")


def alter_domain(node, st: Statement, walk: Walk) -> None:
    """Adding a constraint or NOT NULL to a domain checks every column of that domain."""
    name = ".".join(part.sval for part in node.typeName)
    # 'O' is SET NOT NULL and 'V' VALIDATE CONSTRAINT ('N' is DROP NOT NULL, which checks nothing)
    validating = node.subtype in ("O", "V") or (
        node.subtype == "C" and not getattr(node.def_, "skip_validation", False)
    )
    if validating:
        walk.lock(st, SHARE)
        st.scans = st.validates = True
        walk.hit(st, "domain-check", None, f"checks every column of domain {name}")


def grant(node, st: Statement, walk: Walk) -> None:
    if not node.is_grant:
        walk.hit(st, "revoke", None, "the application's role may lose access it uses")


def table_lock_only(mode: str):
    """Statements that briefly lock one table and change how it behaves, not what it holds."""

    def handler(node, st: Statement, walk: Walk) -> None:
        range_var = getattr(node, "relation", None) or getattr(node, "table", None)
        walk.lock(st, mode)
        if range_var is not None:
            table = relation_name(range_var)
            st.tables.append(table)
            walk.strong_lock(st, table)

    return handler


def server_wide(what: str):
    def handler(node, st: Statement, walk: Walk) -> None:
        walk.hit(st, "server-wide-change", None, what)

    return handler


def outside_transaction(what: str, *, rule: str = "server-wide-change"):
    def handler(node, st: Statement, walk: Walk) -> None:
        walk.hit(st, rule, None, what)
        if walk.in_transaction:
            walk.hit(st, "outside-transaction-only", None, what)

    return handler


def opaque(what: str):
    def handler(node, st: Statement, walk: Walk) -> None:
        walk.hit(st, "opaque-code", None, what)

    return handler


def drop_owned(node, st: Statement, walk: Walk) -> None:
    roles = ", ".join(getattr(role, "rolename", None) or "?" for role in node.roles or ())
    st.destroys_data = True
    walk.hit(st, "drop-cascade", None, f"drops every object {roles} owns in this database")


HANDLERS = {
    "LockStmt": explicit_lock,
    "ReindexStmt": reindex,
    "ClusterStmt": cluster,
    "VacuumStmt": vacuum,
    "AlterTableMoveAllStmt": move_all_tables,
    "RefreshMatViewStmt": refresh_view,
    "AlterEnumStmt": add_enum_value,
    "AlterDomainStmt": alter_domain,
    "GrantStmt": grant,
    "GrantRoleStmt": grant,
    "DropOwnedStmt": drop_owned,
    "CreateTrigStmt": table_lock_only(SHARE_ROW_EXCLUSIVE),
    "CreatePolicyStmt": table_lock_only(ACCESS_EXCLUSIVE),
    "AlterPolicyStmt": table_lock_only(ACCESS_EXCLUSIVE),
    "RuleStmt": table_lock_only(ACCESS_EXCLUSIVE),
    "ReplicaIdentityStmt": table_lock_only(ACCESS_EXCLUSIVE),
    "DoStmt": opaque("a DO block"),
    "CallStmt": opaque("CALL of a procedure"),
    "ExecuteStmt": opaque("EXECUTE of a prepared statement"),
    "AlterExtensionStmt": opaque("ALTER EXTENSION ... UPDATE runs the extension's scripts"),
    "CreateRoleStmt": server_wide("creates a role"),
    "AlterRoleStmt": server_wide("changes a role (its login, password or rights)"),
    "AlterRoleSetStmt": server_wide("changes a role's settings"),
    "DropRoleStmt": server_wide("drops a role"),
    "ReassignOwnedStmt": server_wide("hands every object of a role to another"),
    "AlterDatabaseStmt": server_wide("changes the database's options"),
    "AlterDatabaseSetStmt": server_wide("changes the database's default settings"),
    "AlterTableSpaceOptionsStmt": server_wide("changes a tablespace"),
    "AlterSystemStmt": outside_transaction("ALTER SYSTEM changes the server's configuration"),
    "CreatedbStmt": outside_transaction("CREATE DATABASE"),
    "DropdbStmt": outside_transaction("DROP DATABASE", rule="drop-database"),
    "CreateTableSpaceStmt": outside_transaction("CREATE TABLESPACE"),
    "DropTableSpaceStmt": outside_transaction("DROP TABLESPACE"),
}
