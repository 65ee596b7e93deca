"""The analyzer's predicted table locks against the ones PostgreSQL granted on the copy.

Each statement the sampler saw is matched to the plan's statement with the same text (else it
is analyzed on its own). Each lock is judged at the statement it was first seen under (a later
statement of the same transaction only inherits it); it is explained when that statement, or
one before it in the plan, was predicted to take at least that mode on the table, or created
the table (a lock on a table no other session can see yet holds nobody up). PostgreSQL
holding a stronger lock than any prediction explains is a ``high`` mismatch:
the analyzer understated what the application waits for. A statement that ran holding a weaker
lock on its table than predicted is a ``low`` one. Either is a regression case for the analyzer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from autopr_migrate.analysis.analyzer import LintError, analyze
from autopr_migrate.analysis.model import LintReport, Statement
from autopr_migrate.analysis.walk import LOCK_STRENGTH
from autopr_migrate.backends.lock_sampler import OurStatement

_MATCHED_CHARS = 200
_CREATES = ("CreateStmt", "CreateTableAsStmt")


@dataclass(frozen=True)
class LockMismatch:
    statement: int | None  # the plan's statement number, when the text matched one
    level: str
    message: str


@dataclass
class StatementLocks:
    statement: OurStatement
    predicted: str | None
    strongest: dict[str, str]  # table -> the strongest mode granted, in the analyzer's words
    in_plan: bool
    mismatches: list[LockMismatch] = field(default_factory=list)


def mode_name(pg_mode: str) -> str:
    """``AccessExclusiveLock`` -> ``ACCESS EXCLUSIVE``."""
    return " ".join(re.findall(r"[A-Z][a-z]+", pg_mode.removesuffix("Lock"))).upper()


def compare_locks(
    statements: list[OurStatement], report: LintReport | None
) -> list[StatementLocks]:
    """Each statement of the migration seen running, with its locks and any mismatch; Alembic's
    own reads (catalog and version table, nothing stronger than ACCESS SHARE) are left out."""
    plan = report.statements if report else []
    normalized = [_normalized(statement.sql) for statement in plan]
    out = []
    for seen in sorted(statements, key=lambda s: s.first_seen):
        strongest = _strongest(
            (table, mode) for table, modes in seen.held.items() for mode in modes
        )
        index = _match(_normalized(seen.query), normalized)
        own = plan[index] if index is not None else _analyzed(seen.query)
        pool = plan[: index + 1] if index is not None else [*plan, *([own] if own else [])]
        weak = all(LOCK_STRENGTH.index(mode) <= 1 for mode in strongest.values())
        if index is None and weak:
            continue
        found = StatementLocks(seen, own.lock if own else None, strongest, index is not None)
        if seen.running_samples:
            found.mismatches = _mismatches(found, own, pool, index)
        out.append(found)
    return out


def _mismatches(
    found: StatementLocks, own: Statement | None, pool: list[Statement], index: int | None
) -> list[LockMismatch]:
    number = index + 1 if index is not None else None
    text = " ".join(found.statement.query.split())[:70]
    out = []
    created = {table for s in pool if s.kind in _CREATES for table in _tables(s)}
    for table, mode in sorted(_strongest(found.statement.acquired).items()):
        if table in created:
            continue  # no other session sees a table until the transaction creating it commits
        explained = max(
            (LOCK_STRENGTH.index(s.lock) for s in pool if table in _tables(s)), default=0
        )
        if LOCK_STRENGTH.index(mode) > explained:
            predicted = LOCK_STRENGTH[explained] or "no lock"
            out.append(
                LockMismatch(
                    number,
                    "high",
                    f"`{text}`: PostgreSQL held {mode} on {table}; the analyzer predicted "
                    f"{predicted}",
                )
            )
    if own is not None and own.lock:
        for table in _tables(own):
            held = found.strongest.get(table)
            if held and LOCK_STRENGTH.index(held) < LOCK_STRENGTH.index(own.lock):
                out.append(
                    LockMismatch(
                        number,
                        "low",
                        f"`{text}`: the analyzer predicted {own.lock} on {table}; PostgreSQL "
                        f"held only {held}",
                    )
                )
    return out


def _strongest(locks) -> dict[str, str]:
    """table -> the strongest of these (table, pg_locks mode) locks, in the analyzer's words."""
    strongest: dict[str, str] = {}
    for table, pg_mode in locks:
        mode, name = mode_name(pg_mode), table.lower()
        if name not in strongest or LOCK_STRENGTH.index(mode) > LOCK_STRENGTH.index(
            strongest[name]
        ):
            strongest[name] = mode
    return strongest


def _tables(statement: Statement) -> set[str]:
    return {table.split(".")[-1].strip('"').lower() for table in statement.tables}


def _analyzed(query: str) -> Statement | None:
    try:
        statements = analyze(query).statements
    except LintError:
        return None  # cut off at track_activity_query_size, or not PostgreSQL SQL
    return statements[0] if len(statements) == 1 else None


def _normalized(sql: str) -> str:
    return " ".join(sql.split()).rstrip(";").strip().lower()


def _match(query: str, plan: list[str]) -> int | None:
    for index, sql in enumerate(plan):
        length = min(len(query), len(sql), _MATCHED_CHARS)
        if (
            length >= 8
            and query[:length] == sql[:length]
            and (len(query) == len(sql) or length == _MATCHED_CHARS or len(query) >= 1000)
        ):
            return index
    return None
