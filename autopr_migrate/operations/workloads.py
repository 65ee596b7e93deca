"""Which load the rehearsal puts on its copy while the upgrade runs there.

In this order: the policy's own pgbench script (``impact.workload_file``); else the target's
own most frequent queries on the tables the plan touches, from ``pg_stat_statements`` when the
extension is installed and loaded, each run with parameters sampled from the copy; else a
generic mix on those tables: for each, three reads to one write of a random row, found by its
place on a random page (``ctid``), so any table works, whatever its key; when the plan names
no table (a DO block, a function call, SQL not known), on the four largest tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from autopr_migrate.backends.workload import Script
from autopr_migrate.errors import PreflightRefused

MOST_QUERIES = 5
VARIANTS = 8  # scripts per top query, each with other sampled parameters
MOST_TABLES = 4
_PARAMETER = re.compile(
    r'(?:"?(?P<table>\w+)"?\.)?"?(?P<column>\w+)"?\s*(?:=|<>|!=|<=|>=|<|>)\s*\$(?P<n>\d+)'
)
_LIMIT = re.compile(r"\b(?P<word>limit|offset)\s+\$(?P<n>\d+)", re.IGNORECASE)
_TOP = text(
    "SELECT s.query, s.calls FROM pg_stat_statements s "
    "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() "
    "AND s.query ~* '^\\s*(select|update)\\s' ORDER BY s.calls DESC LIMIT 200"
)
_TABLE = text(
    "SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name, "
    "greatest(pg_relation_size(c.oid) / current_setting('block_size')::int, 1) AS pages "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND c.oid = to_regclass(:name)"
)
_LARGEST = text(
    "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_' "
    f"ORDER BY pg_relation_size(c.oid) DESC LIMIT {MOST_TABLES}"
)
_COLUMN = text(
    "SELECT quote_ident(a.attname) FROM pg_attribute a "
    "LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary "
    "AND a.attnum = ANY(i.indkey) "
    "WHERE a.attrelid = :oid AND a.attnum > 0 AND NOT a.attisdropped "
    "AND a.attidentity <> 'a' AND a.attgenerated = '' "
    "ORDER BY i.indrelid IS NULL, a.attnum LIMIT 1"
)


@dataclass(frozen=True)
class ChosenWorkload:
    scripts: list[Script]
    description: str


def choose_workload(
    target_connection: Connection,
    copy_connection: Connection,
    tables: list[str],
    workload_file: str,
) -> ChosenWorkload | str:
    """The workload, or why there is none (then the impact is not measured)."""
    if workload_file:
        return _from_file(workload_file)
    scripts = _with_sampled_parameters(copy_connection, top_queries(target_connection, tables))
    if scripts:
        replayed = len({script.query for script in scripts})
        return ChosenWorkload(
            scripts,
            f"the target's {replayed} most frequent quer{'y' if replayed == 1 else 'ies'} on "
            f"these tables (pg_stat_statements), parameters sampled from the copy",
        )
    return generic_mix(copy_connection, tables)


def _from_file(path: str) -> ChosenWorkload:
    script = Path(path).expanduser()
    try:
        body = script.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise PreflightRefused(
            f"policy.impact.workload_file {path[:80]!r} cannot be read ({type(exc).__name__}): "
            f"give the path of a pgbench script on the worker, or leave it empty"
        ) from None
    if not body.strip():
        raise PreflightRefused(
            f"policy.impact.workload_file {path[:80]!r} is empty: give a pgbench script"
        )
    return ChosenWorkload([Script(body)], f"the policy's workload file {script.name}")


def top_queries(connection: Connection, tables: list[str]) -> list[str]:
    """The target's most frequent SELECT and UPDATE queries that name one of ``tables``; empty
    when ``pg_stat_statements`` is not installed in the database or not loaded."""
    names = {_bare(table) for table in tables}
    if not names:
        return []
    try:
        with connection.begin_nested():
            installed = connection.execute(text("SELECT to_regclass('pg_stat_statements')"))
            if installed.scalar() is None:
                return []
            rows = connection.execute(_TOP).all()
    except DBAPIError:  # installed, but not in shared_preload_libraries
        return []
    chosen = []
    for row in rows:
        words = {word.lower() for word in re.findall(r"\w+", row.query)}
        if words & names and "pg_stat_statements" not in words:
            chosen.append(row.query)
        if len(chosen) == MOST_QUERIES:
            break
    return chosen


def parameters_of(query: str) -> dict[int, tuple[str | None, str]] | None:
    """``$n`` -> (table or None, column) it is compared with; LIMIT/OFFSET get ``("", word)``.

    None when a parameter is used in a way that cannot be sampled (the query is then left out).
    """
    found: dict[int, tuple[str | None, str]] = {}
    for match in _PARAMETER.finditer(query):
        found[int(match["n"])] = (match["table"], match["column"])
    for match in _LIMIT.finditer(query):
        found[int(match["n"])] = ("", match["word"].lower())
    used = {int(n) for n in re.findall(r"\$(\d+)", query)}
    return found if used <= set(found) else None


def _with_sampled_parameters(connection: Connection, queries: list[str]) -> list[Script]:
    scripts = []
    for query in queries:
        wanted = parameters_of(query)
        if wanted is None:
            continue
        tables = [word for word in re.findall(r"\b(?:from|update|join)\s+([\w.\"]+)", query, re.I)]
        values = {n: _sample(connection, tables, where) for n, where in wanted.items()}
        if any(not found for found in values.values()):
            continue
        scripts += [
            Script(_bound(query, values, variant), query=query) for variant in range(VARIANTS)
        ]
    return scripts


def _bound(query: str, values: dict[int, list[str]], variant: int) -> str:
    def value(match: re.Match) -> str:
        choices = values[int(match[1])]
        return choices[variant % len(choices)]

    return re.sub(r"\$(\d+)", value, query).rstrip().rstrip(";") + ";\n"


def _sample(connection: Connection, tables: list[str], where: tuple[str | None, str]) -> list[str]:
    table, column = where
    if table == "":
        return ["10"] if column == "limit" else ["0"]
    for name in [table] if table else tables:
        picked = f'SELECT "{column}"::text FROM {name} {{}} WHERE "{column}" IS NOT NULL LIMIT 8'
        try:
            with connection.begin_nested():
                sampled = text(picked.format("TABLESAMPLE SYSTEM (1)"))
                rows = (
                    connection.execute(sampled).scalars().all()
                    or connection.execute(text(picked.format(""))).scalars().all()
                )
        except DBAPIError:
            continue
        if rows:
            return ["'" + value.replace("'", "''") + "'" for value in rows]
    return []


def generic_mix(connection: Connection, tables: list[str]) -> ChosenWorkload | str:
    """On ``tables``; when the plan names none (its SQL is a DO block, a function call, or not
    known), on the database's largest tables."""
    scripts, named = [], []
    for table in tables or connection.execute(_LARGEST).scalars().all():
        row = connection.execute(_TABLE, {"name": table}).first()
        if row is None:
            continue  # created by the plan: nobody uses it yet
        column = connection.execute(_COLUMN, {"oid": row.oid}).scalar()
        if column is None:
            continue
        pick = f"\\set page random(0, {int(row.pages) - 1})\n"
        where = "WHERE ctid = format('(%s,1)', :page)::tid"
        scripts.append(Script(f"{pick}SELECT * FROM {row.name} {where};\n", weight=3))
        scripts.append(Script(f"{pick}UPDATE {row.name} SET {column} = {column} {where};\n"))
        named.append(row.name)
        if len(named) == MOST_TABLES:
            break
    if not scripts:
        return "the plan touches no table that exists before it runs, and there is none"
    return ChosenWorkload(
        scripts, f"a generic mix on {', '.join(named)}: 3 reads to 1 write of a random row"
    )


def _bare(table: str) -> str:
    return table.split(".")[-1].strip('"').lower()
