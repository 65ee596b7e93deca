"""The SQL text of a backfill: each batch's one statement, and the whole of it in one go."""

from __future__ import annotations

from dataclasses import dataclass, replace

from autopr_migrate.model import BACKFILL_CHECKPOINT_TABLE as CHECKPOINT_TABLE
from autopr_migrate.ops import sql
from autopr_migrate.ops.runner import escape_colons


@dataclass(frozen=True)
class Change:
    """What a backfill changes: ``UPDATE <qualified> SET <assignments> WHERE <where>``, keyed
    by ``key``, and the records it writes (``(table, {column: expression})``)."""

    table: str
    qualified: str
    assignments: str
    where: str | None
    key: str
    recording: tuple[str, dict[str, str]] | None

    def for_text(self) -> Change:
        """The same with every colon of its expressions escaped, for a ``text()`` statement
        whose own parameters are ``:last`` and ``:name``."""
        recording = self.recording and (
            self.recording[0],
            {column: escape_colons(value) for column, value in self.recording[1].items()},
        )
        return replace(
            self,
            assignments=escape_colons(self.assignments),
            where=escape_colons(self.where) if self.where else None,
            recording=recording,
        )


def whole_statements(change: Change, *, postgresql: bool) -> list[str]:
    """The whole backfill, for the revision's transaction. PostgreSQL: one statement, which
    locks, updates and records the same rows. SQLite (one writer): the records of the rows
    about to change, then their update."""
    condition = f" WHERE {change.where}" if change.where else ""
    plain = f"UPDATE {change.qualified} SET {change.assignments}{condition}"
    if change.recording is None:
        return [plain]
    if postgresql:
        return [f"WITH {_changes(change)} {_records(change.recording)}"]
    into, columns = change.recording
    records = (
        f"INSERT INTO {into} ({sql.column_list(list(columns))}) "
        f"SELECT {', '.join(columns.values())} FROM {change.qualified}{condition}"
    )
    return [records, plain]


def batch_sql(change: Change, key_type: str, size: int) -> str:
    """One statement: the next batch's keys, their update (and its records), and the checkpoint
    moved past them; no row when nothing is left. Its parameters are ``:last`` and ``:name``:
    the caller has escaped the colons of the expressions it passes."""
    after = f"CAST(:last AS {key_type})"
    key, qualified = sql.quote(change.key), change.qualified
    own_key = f"{sql.quote(change.table)}.{key}"
    bounds = f"(:last IS NULL OR {own_key} > {after}) AND {own_key} <= _autopr_bound._autopr_upper"
    recording = change.recording
    recorded = f", _autopr_recorded AS ({_records(recording)})" if recording else ""
    return (
        f"WITH _autopr_batch AS (SELECT {key} AS k FROM {qualified} "
        f"WHERE :last IS NULL OR {key} > {after} ORDER BY {key} LIMIT {int(size)}), "
        "_autopr_bound AS (SELECT k AS _autopr_upper FROM _autopr_batch ORDER BY k DESC LIMIT 1), "
        f"{_changes(change, bounds)}{recorded} "
        f"UPDATE {CHECKPOINT_TABLE} SET "
        "last_key = (SELECT _autopr_upper::text FROM _autopr_bound), "
        "rows_done = rows_done + (SELECT count(*) FROM _autopr_updated), "
        "updated_at = clock_timestamp() "
        "WHERE name = :name AND (SELECT _autopr_upper FROM _autopr_bound) IS NOT NULL "
        "RETURNING last_key, (SELECT count(*) FROM _autopr_updated)"
    )


def _changes(change: Change, bounds: str | None = None) -> str:
    """The CTEs that change the rows (``bounds``: a condition on ``_autopr_bound``) and end in
    ``_autopr_updated``: with a record, each row is locked first (``FOR NO KEY UPDATE``, which
    the application's foreign-key checks pass), its record's values read before its update,
    and the update changes exactly the rows locked."""
    table, qualified, assignments = sql.quote(change.table), change.qualified, change.assignments
    own_key = f"{table}.{sql.quote(change.key)}"
    conditions = [c for c in (bounds, f"({change.where})" if change.where else None) if c]
    if change.recording is None:  # only in batches: offline, a plain UPDATE is the whole
        return (
            f"_autopr_updated AS (UPDATE {qualified} SET {assignments} FROM _autopr_bound "
            f"WHERE {' AND '.join(conditions)} RETURNING 1)"
        )
    _into, columns = change.recording
    values = ", ".join(f"{value} AS _autopr_{i}" for i, value in enumerate(columns.values()))
    sources = f"{qualified}, _autopr_bound" if bounds else qualified
    selected = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    again = f" AND {bounds}" if bounds else ""  # lets the planner reach only the batch's rows
    return (
        f"_autopr_before AS (SELECT {own_key} AS _autopr_key, {values} FROM {sources}{selected} "
        f"FOR NO KEY UPDATE OF {table}), "
        f"_autopr_updated AS (UPDATE {qualified} SET {assignments} FROM _autopr_before"
        f"{', _autopr_bound' if bounds else ''} WHERE {own_key} = _autopr_before._autopr_key"
        f"{again} RETURNING _autopr_before.*)"
    )


def _records(recording: tuple[str, dict[str, str]]) -> str:
    into, columns = recording
    return (
        f"INSERT INTO {into} ({sql.column_list(list(columns))}) SELECT "
        + ", ".join(f"_autopr_{i}" for i in range(len(columns)))
        + " FROM _autopr_updated"
    )
