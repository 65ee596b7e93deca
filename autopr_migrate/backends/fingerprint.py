"""A database's schema as comparable data: did a downgrade really put it back?"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, inspect

from autopr_migrate.model import LEDGER_TABLE


def fingerprint(
    connection: Connection, *, version_table: str = "alembic_version"
) -> dict[str, dict[str, Any]]:
    """Tables with their columns, keys, indexes and constraints (names, types, nullability);
    the tool's ledger and the history's version table are bookkeeping, not schema."""
    inspector = inspect(connection)
    schema: dict[str, dict[str, Any]] = {}
    ignored = {LEDGER_TABLE, version_table}
    for table in sorted(set(inspector.get_table_names()) - ignored):
        schema[table] = {
            "columns": {
                c["name"]: (str(c["type"]), c["nullable"], str(c.get("default")))
                for c in inspector.get_columns(table)
            },
            "primary key": tuple(inspector.get_pk_constraint(table)["constrained_columns"]),
            "foreign keys": sorted(
                (fk["name"] or "", tuple(fk["constrained_columns"]), fk["referred_table"])
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (i["name"] or "", tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique constraints": sorted(
                (u["name"] or "", tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
            "check constraints": sorted(
                (c["name"] or "", c["sqltext"]) for c in inspector.get_check_constraints(table)
            ),
        }
    if connection.in_transaction():
        connection.rollback()
    return schema


def differences(before: dict, after: dict) -> list[str]:
    """What ``after`` has that ``before`` did not, and the other way round, one line each."""
    lines = [f"table {t} is left over" for t in sorted(after.keys() - before.keys())]
    lines += [f"table {t} is missing" for t in sorted(before.keys() - after.keys())]
    for table in sorted(before.keys() & after.keys()):
        for part in before[table]:
            if before[table][part] != after[table][part]:
                lines.append(f"{table}: {part} differ")
    return lines
