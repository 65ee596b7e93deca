"""``alembic revision --autogenerate`` writing the safe operations where they matter.

In ``env.py``::

    from autopr_migrate.ops.autogenerate import safe_operations

    context.configure(..., process_revision_directives=safe_operations)

An index created on (or dropped from) a table that already exists becomes
``safe.create_index`` (``safe.drop_index``); one on a table the same revision creates stays
``op.create_index``: nobody uses that table yet, and the index must be there with it (a table
the revision drops, likewise).
"""

from __future__ import annotations

from alembic.autogenerate import renderers
from alembic.operations import ops
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import CompileError
from sqlalchemy.sql.expression import ColumnClause

_IMPORT = "from autopr_migrate.ops import safe"
# index options safe.create_index takes ("unique" is how a dropped index is described)
_RENDERED = {"postgresql_where", "postgresql_using", "unique"}
_POSTGRESQL = postgresql.dialect()


def _sql(expression) -> str:
    """An index expression as PostgreSQL reads it, without table names or parameters."""
    if isinstance(expression, str):
        return expression
    return str(
        expression.compile(
            dialect=_POSTGRESQL, compile_kwargs={"literal_binds": True, "include_table": False}
        )
    )


class SafeCreateIndexOp(ops.MigrateOperation):
    def __init__(self, original: ops.CreateIndexOp) -> None:
        self.original = original

    def reverse(self) -> SafeDropIndexOp:
        return SafeDropIndexOp(self.original.reverse())


class SafeDropIndexOp(ops.MigrateOperation):
    def __init__(self, original: ops.DropIndexOp) -> None:
        self.original = original

    def reverse(self) -> SafeCreateIndexOp:
        return SafeCreateIndexOp(self.original.reverse())


def safe_operations(context, revision, directives: list) -> None:
    """Alembic's ``process_revision_directives``: rewrite the index operations in place."""
    for script in directives:
        if not isinstance(script, ops.MigrationScript):
            continue
        containers = [c for c in (*script.upgrade_ops_list, *script.downgrade_ops_list) if c]
        created = {
            (op_.schema, op_.table_name)
            for container in containers
            for op_ in _walk(container.ops)
            if isinstance(op_, ops.CreateTableOp | ops.DropTableOp)
        }
        for container in containers:
            _rewrite(container, created)


def _rewrite(container: ops.OpContainer, created: set[tuple[str | None, str]]) -> None:
    for position, op_ in enumerate(container.ops):
        if isinstance(op_, ops.OpContainer):
            _rewrite(op_, created)
        elif not isinstance(op_, ops.CreateIndexOp | ops.DropIndexOp):
            continue
        elif (op_.schema, op_.table_name) in created or not _renderable(op_):
            continue  # a new table's index; or options or expressions it cannot write
        elif isinstance(op_, ops.CreateIndexOp):
            container.ops[position] = SafeCreateIndexOp(op_)
        else:
            container.ops[position] = SafeDropIndexOp(op_)


def _renderable(op_: ops.CreateIndexOp | ops.DropIndexOp) -> bool:
    if not set(op_.kw) <= _RENDERED:
        return False
    try:
        for expression in [*getattr(op_, "columns", []), op_.kw.get("postgresql_where")]:
            if expression is not None and not isinstance(expression, ColumnClause):
                _sql(expression)
    except CompileError:  # a literal PostgreSQL cannot be given as text here
        return False
    return True


def _walk(items):
    for item in items:
        if isinstance(item, ops.OpContainer):
            yield from _walk(item.ops)
        else:
            yield item


@renderers.dispatch_for(SafeCreateIndexOp)
def _render_create(autogen_context, op_: SafeCreateIndexOp) -> str:
    autogen_context.imports.add(_IMPORT)
    index = op_.original
    columns = [
        column.name if isinstance(column, ColumnClause) else _sql(column)
        for column in index.columns
    ]
    where = index.kw.get("postgresql_where")
    using = index.kw.get("postgresql_using")
    arguments = [repr(index.index_name), repr(index.table_name), repr(columns)]
    if index.unique:
        arguments.append("unique=True")
    if where is not None:
        arguments.append(f"where={_sql(where)!r}")
    if using:
        arguments.append(f"using={using!r}")
    if index.schema:
        arguments.append(f"schema={index.schema!r}")
    return f"safe.create_index({', '.join(arguments)})"


@renderers.dispatch_for(SafeDropIndexOp)
def _render_drop(autogen_context, op_: SafeDropIndexOp) -> str:
    autogen_context.imports.add(_IMPORT)
    index = op_.original
    schema = f", schema={index.schema!r}" if index.schema else ""
    return f"safe.drop_index({index.index_name!r}{schema})"
