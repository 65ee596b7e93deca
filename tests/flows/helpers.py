"""What the flow tests check: revisions, ledger rows, checksums."""

from __future__ import annotations

from sqlalchemy import Engine, select

from autopr_migrate.store.ledger import LEDGER_TABLE, ledger
from tests.support.alembic_run import upgrade
from tests.support.databases import table_checksums
from tests.support.seed import seed

NOT_APPLICATION_DATA = frozenset({LEDGER_TABLE, "alembic_version"})


def at_head_with_rows(engine: Engine) -> Engine:
    upgrade(engine, "head")
    with engine.begin() as connection:
        seed(connection)
    return engine


def checksums(engine: Engine) -> dict:
    """Every application table's row count and checksum (not the ledger, not the revision)."""
    with engine.connect() as connection:
        return table_checksums(connection, exclude=NOT_APPLICATION_DATA)


def ledger_rows(engine: Engine) -> list[dict]:
    """The ledger's rows in order; none while no run has created the table."""
    from sqlalchemy import inspect

    with engine.connect() as connection:
        if not inspect(connection).has_table(ledger.name):
            return []
        return [
            dict(r) for r in connection.execute(select(ledger).order_by(ledger.c.id)).mappings()
        ]


def schema(engine: Engine) -> dict[str, list[str]]:
    from sqlalchemy import inspect

    with engine.connect() as connection:
        inspector = inspect(connection)
        return {
            table: sorted(c["name"] for c in inspector.get_columns(table))
            for table in inspector.get_table_names()
            if table != LEDGER_TABLE
        }
