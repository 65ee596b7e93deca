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
_SHELL = re.compile(r"^\s*\\(set)?shell\b", re.IGNORECASE | re.MULTILINE)
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
_ATTRIBUTE = text(
    "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:name) AND attnum > 0 "
    "AND NOT attisdropped AND attname IN (:column, lower(:column)) "
    "ORDER BY attname = :column DESC LIMIT 1"
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
        return read_workload_file(workload_file)
    scripts = _with_sampled_parameters(copy_connection, top_queries(target_connection, tables))
    if scripts:
        replayed = len({script.query for script in scripts})
        return ChosenWorkload(
            scripts,
            f"the target's {replayed} most frequent quer{'y' if replayed == 1 else 'ies'} on "
            f"these tables (pg_stat_statements), parameters sampled from the copy",
        )
    return generic_mix(copy_connection, tables)


def read_workload_file(path: str) -> ChosenWorkload:
    """The policy's pgbench script; refused when it cannot be read, is empty, or would run
    commands on the worker (``\\shell``, ``\\setshell``)."""
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
    if _SHELL.search(body):
        raise PreflightRefused(
            f"policy.impact.workload_file {path[:80]!r} runs commands on the worker "
            f"(\\shell or \\setshell): remove them; the workload is SQL only"
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
    """Each query in ``VARIANTS`` variants; a variant takes all its values of one table from one
    sampled row, so a query keeps meaning something (an UPDATE sets a row's own values)."""
    scripts = []
    for query in queries:
        wanted = parameters_of(query)
        homes = _homes(connection, query, wanted) if wanted is not None else None
        if homes is None:
            continue
        fixed = {n: ("10" if c == "limit" else "0") for n, (t, c) in wanted.items() if t == ""}
        rows = {
            home: _sample_rows(connection, home, [c for _, c in on]) for home, on in homes.items()
        }
        if not all(rows.values()):
            continue
        for variant in range(VARIANTS):
            values = dict(fixed)
            for home, on in homes.items():
                row = rows[home][variant % len(rows[home])]
                values.update((n, value) for (n, _), value in zip(on, row, strict=True))
            scripts.append(Script(_bound(query, values), query=query))
    return scripts


def _homes(
    connection: Connection, query: str, wanted: dict[int, tuple[str | None, str]]
) -> dict[str, list[tuple[int, str]]] | None:
    """table -> its (parameter, column) pairs; None when a column is in none of the tables."""
    tables = re.findall(r"\b(?:from|update|join)\s+([\w.\"]+)", query, re.I)
    homes: dict[str, list[tuple[int, str]]] = {}
    for n, (table, column) in wanted.items():
        if table == "":
            continue  # LIMIT or OFFSET
        home = _table_with(connection, [table, *tables] if table else tables, column)
        if home is None:
            return None
        homes.setdefault(home[0], []).append((n, home[1]))
    return homes


def _bound(query: str, values: dict[int, str]) -> str:
    bound = re.sub(r"\$(\d+)", lambda match: values[int(match[1])], query)
    return bound.rstrip().rstrip(";") + ";\n"


def _table_with(connection: Connection, names: list[str], column: str) -> tuple[str, str] | None:
    """The first of ``names`` that is a table with that column: (its name, the column's)."""
    for name in names:
        try:
            with connection.begin_nested():
                found = connection.execute(_ATTRIBUTE, {"name": name, "column": column}).scalar()
        except DBAPIError:
            continue
        if found is not None:
            return name, found
    return None


def _sample_rows(connection: Connection, table: str, columns: list[str]) -> list[list[str]]:
    """Up to ``VARIANTS`` rows of those columns, as SQL literals."""
    quoted = [_identifier(column) for column in columns]
    picked = (
        f"SELECT {', '.join(f'{c}::text' for c in quoted)} FROM {table} {{}} "
        f"WHERE {' AND '.join(f'{c} IS NOT NULL' for c in quoted)} LIMIT {VARIANTS}"
    )
    try:
        with connection.begin_nested():
            rows = (
                connection.execute(text(picked.format("TABLESAMPLE SYSTEM (1)"))).all()
                or connection.execute(text(picked.format(""))).all()
            )
    except DBAPIError:
        return []
    return [["'" + value.replace("'", "''") + "'" for value in row] for row in rows]


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def generic_mix(connection: Connection, tables: list[str]) -> ChosenWorkload | str:
    """On ``tables``; when the plan names none (its SQL is a DO block, a function call, or not
    known), on the database's largest tables."""
    scripts, named = [], []
    version = connection.execute(text("SHOW server_version_num")).scalar()
    ranged = int(version or 0) >= 140000  # TID range scans: the page's first live row
    for table in tables or connection.execute(_LARGEST).scalars().all():
        row = connection.execute(_TABLE, {"name": table}).first()
        if row is None:
            continue  # created by the plan: nobody uses it yet
        column = connection.execute(_COLUMN, {"oid": row.oid}).scalar()
        if column is None:
            continue
        pick = f"\\set page random(0, {int(row.pages) - 1})\n"
        on_page = (
            f"SELECT ctid FROM {row.name} WHERE ctid >= format('(%s,0)', :page)::tid "
            f"AND ctid < format('(%s,0)', :page + 1)::tid LIMIT 1"
            if ranged
            else "SELECT format('(%s,1)', :page)::tid"
        )
        where = f"WHERE ctid = ({on_page})"
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
