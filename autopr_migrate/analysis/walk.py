"""The analyzer's state while it reads a script, statement by statement.

Besides the locks and findings, it keeps what the plan itself has made true: the tables it
created (empty, so nothing on them blocks anybody), the tables it renamed (a renamed table keeps
its size), and each column's type and nullability, starting from the live catalog when there is
one. An earlier statement can make a later one harmless: a column created ``NOT NULL`` needs no
scan for ``SET NOT NULL``, and neither does one a validated ``CHECK (col IS NOT NULL)`` covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from autopr_migrate.analysis.model import Statement

ACCESS_SHARE = "ACCESS SHARE"
ROW_SHARE = "ROW SHARE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
SHARE = "SHARE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
LOCK_STRENGTH = (
    None,
    ACCESS_SHARE,
    ROW_SHARE,
    ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    EXCLUSIVE,
    ACCESS_EXCLUSIVE,
)
# Modes that make the application's writes (or reads) wait.
BLOCKING = {SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE}


@dataclass(frozen=True)
class ColumnFact:
    """What is known of a column; None where it is not known (linting offline)."""

    type: str | None
    not_null: bool | None
    proven_not_null: bool = False  # a validated CHECK (col IS NOT NULL): no scan needed


@dataclass(frozen=True)
class Hit:
    """A rule that matched a statement, before sizes decide how severe it is.

    ``tier`` overrides the size tier of ``table`` (a statement over every table is "large").
    """

    statement: int
    rule: str
    table: str | None
    detail: str = ""
    tier: str | None = None


@dataclass
class Walk:
    lock_timeout: bool
    columns: dict[tuple[str, str], ColumnFact] = field(default_factory=dict)
    catalog_known: bool = False  # the columns came from the live database
    utc_session: bool = False  # the migrating session's time zone is UTC
    version_table: str = "alembic_version"  # Alembic's bookkeeping: one row, never a backfill
    in_transaction: bool = False
    created: set[str] = field(default_factory=set)
    sources: dict[str, str] = field(default_factory=dict)  # renamed table -> its live name
    # CHECK (column IS NOT NULL) constraints by (table, name) -> column, and whether validated
    checks: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    # lock_timeout as the session had it before a SET LOCAL, restored at the transaction's end
    lock_timeout_outside: bool | None = None

    def hit(
        self, st: Statement, rule: str, table: str | None, detail: str = "", tier: str | None = None
    ) -> None:
        self.hits.append(Hit(st.number, rule, table, detail, tier))

    @staticmethod
    def lock(st: Statement, mode: str) -> None:
        if LOCK_STRENGTH.index(mode) > LOCK_STRENGTH.index(st.lock):
            st.lock = mode

    def strong_lock(self, st: Statement, table: str | None) -> None:
        """A blocking lock on an existing table with no lock_timeout queues every query."""
        if st.lock in BLOCKING and not self.lock_timeout and table not in self.created:
            self.hit(st, "missing-lock-timeout", table)

    def source_of(self, table: str | None) -> str | None:
        """The name the live database knows ``table`` by (it may have been renamed since)."""
        return self.sources.get(table, table) if table else table

    def create_table(self, table: str, columns: dict[str, ColumnFact]) -> None:
        self.created.add(table)
        self.sources.pop(table, None)
        self._forget_columns(table)
        self.columns.update({(table, name): fact for name, fact in columns.items()})

    def drop_table(self, table: str) -> None:
        self.created.discard(table)
        self._forget_columns(table)

    def rename_table(self, old: str, new: str) -> None:
        self.created.discard(new)
        if old in self.created:
            self.created.discard(old)
            self.created.add(new)
        self.sources[new] = self.sources.pop(old, old)
        self._forget_columns(new)
        for (table, column), fact in list(self.columns.items()):
            if table == old:
                self.columns[(new, column)] = fact
                del self.columns[(table, column)]
        for table, name in list(self.checks):
            if table == old:
                self.checks[(new, name)] = self.checks.pop((table, name))

    def rename_column(self, table: str, old: str, new: str) -> None:
        fact = self.columns.pop((table, old), None)
        if fact is not None:
            self.columns[(table, new)] = fact
        for key, (column, validated) in list(self.checks.items()):
            if key[0] == table and column == old:
                self.checks[key] = (new, validated)

    def add_not_null_check(self, table: str, name: str, column: str, *, validated: bool) -> None:
        self.checks[(table, name)] = (column, validated)
        if validated:
            self.update_column(table, column, proven_not_null=True)

    def validate_check(self, table: str, name: str) -> None:
        if (table, name) in self.checks:
            column, _ = self.checks[(table, name)]
            self.add_not_null_check(table, name, column, validated=True)

    def drop_check(self, table: str, name: str) -> None:
        """The constraint that proved a column not null is gone: the proof goes with it."""
        column, validated = self.checks.pop((table, name), (None, False))
        still = any(c == column and v for (t, _), (c, v) in self.checks.items() if t == table)
        if column and validated and not still:
            self.update_column(table, column, proven_not_null=False)

    def rename_check(self, table: str, old: str, new: str) -> None:
        if (table, old) in self.checks:
            self.checks[(table, new)] = self.checks.pop((table, old))

    def column(self, table: str, column: str) -> ColumnFact | None:
        return self.columns.get((table, column))

    def update_column(self, table: str, column: str, **changes: object) -> None:
        """Record what a statement made true of a column, known before or not."""
        fact = self.columns.get((table, column), ColumnFact(None, None))
        self.columns[(table, column)] = replace(fact, **changes)

    def _forget_columns(self, table: str) -> None:
        for key in [key for key in self.columns if key[0] == table]:
            del self.columns[key]
