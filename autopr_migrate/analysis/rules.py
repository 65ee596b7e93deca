"""The lint rules: what each finds, how severe it is for a table of each size, what to do instead.

Severity scales with the table a statement locks: a rewrite of an empty table is harmless, the
same rewrite of a table of a million rows blocks the application for minutes. When the size is
unknown (linting without a database), the rule's ``unknown`` level applies. The same table is in
docs/zero-downtime.md, and tests/lint checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from autopr_migrate.analysis.model import DOCS

TIERS = ("empty", "small", "medium", "large", "unknown")


@dataclass(frozen=True)
class Rule:
    name: str
    what: str
    levels: tuple[str, str, str, str, str]  # empty, small, medium, large, unknown
    anchor: str
    fix: str = ""  # the safe operation (autopr_migrate.ops.safe) that does it the safe way

    def level(self, tier: str) -> str:
        return self.levels[TIERS.index(tier)]

    @property
    def suggestion(self) -> str:
        where = f"{DOCS}#{self.anchor}"
        return f"use {self.fix} (see {where})" if self.fix else f"see {where}"


def _rule(name: str, what: str, levels: str, anchor: str, fix: str = "") -> Rule:
    return Rule(name, what, tuple(levels.split()), anchor, fix)  # type: ignore[arg-type]


RULES = {
    rule.name: rule
    for rule in (
        _rule(
            "table-rewrite",
            "rewrites the whole table under ACCESS EXCLUSIVE: reads and "
            "writes wait until it finishes",
            "low low high critical high",
            "changing-a-column-type",
        ),
        _rule(
            "scan-under-access-exclusive",
            "scans the whole table under ACCESS EXCLUSIVE: reads and writes wait until it finishes",
            "low low medium high medium",
            "adding-not-null-and-check-constraints",
            "safe.set_not_null or safe.add_check",
        ),
        _rule(
            "unique-constraint-build",
            "builds a unique index under ACCESS EXCLUSIVE: reads and writes wait until it finishes",
            "low low high critical high",
            "adding-unique-constraints",
            "safe.add_unique",
        ),
        _rule(
            "blocking-index",
            "builds an index under a SHARE lock: writes wait until it finishes",
            "low low medium high medium",
            "creating-indexes",
            "safe.create_index",
        ),
        _rule(
            "blocking-index-drop",
            "drops an index under ACCESS EXCLUSIVE on its table",
            "low low low medium low",
            "dropping-indexes",
            "safe.drop_index",
        ),
        _rule(
            "foreign-key-validation",
            "checks every row for the new foreign key while "
            "holding SHARE ROW EXCLUSIVE on both tables: writes wait",
            "low low medium high medium",
            "adding-foreign-keys",
            "safe.add_foreign_key",
        ),
        _rule(
            "data-loss",
            "destroys data: a downgrade cannot bring it back, only the backup",
            "low high high critical high",
            "dropping-data",
        ),
        _rule(
            "breaking-rename",
            "renames what the running release still uses: it breaks until the next deploy",
            "high high high high high",
            "renaming",
        ),
        _rule(
            "required-column-without-default",
            "adds a NOT NULL column without a default: it fails on a table with rows",
            "low high high high high",
            "adding-columns",
            "safe.add_column with a server_default (or nullable, then safe.backfill and "
            "safe.set_not_null)",
        ),
        _rule(
            "unbatched-backfill",
            "changes rows in one statement: on a big table, a row lock on each and one long "
            "transaction until it commits",
            "low low medium high medium",
            "backfilling-data",
            "safe.backfill",
        ),
        _rule(
            "missing-lock-timeout",
            "takes a strong lock with no lock_timeout: it queues "
            "behind long transactions, and every query queues behind it",
            "medium medium medium medium medium",
            "lock-timeout",
            "the safe operations (each step with its own lock_timeout)",
        ),
        _rule(
            "concurrently-in-transaction",
            "runs CONCURRENTLY inside a transaction block: PostgreSQL refuses it",
            "high high high high high",
            "creating-indexes",
            "safe.create_index",
        ),
        _rule(
            "non-transactional",
            "runs outside a transaction: a failure leaves an INVALID "
            "index behind (the migrate flow drops it)",
            "low low low low low",
            "creating-indexes",
            "safe.create_index (it rebuilds an INVALID leftover)",
        ),
        _rule(
            "validate-constraint",
            "scans the table to validate a constraint, under SHARE "
            "UPDATE EXCLUSIVE: reads and writes go on",
            "low low low low low",
            "adding-not-null-and-check-constraints",
        ),
        _rule(
            "drop-cascade",
            "drops or empties more than it names (CASCADE, DROP OWNED): tables, views and "
            "data that depend on it go too, and only the backup brings them back",
            "high critical critical critical critical",
            "dropping-data",
        ),
        _rule(
            "drop-object",
            "drops an object (view, function, type, sequence, schema...) the running release "
            "may still use: it breaks until the next deploy",
            "low medium medium medium medium",
            "dropping-data",
        ),
        _rule(
            "drop-database",
            "destroys a whole database",
            "critical critical critical critical critical",
            "dropping-data",
        ),
        _rule(
            "explicit-lock",
            "takes a lock by hand and holds it until the transaction ends",
            "low medium high high high",
            "explicit-locks",
        ),
        _rule(
            "reindex",
            "rebuilds indexes under a SHARE lock: writes wait, and reads that use them too",
            "low low medium high medium",
            "rebuilding-indexes-and-materialized-views",
        ),
        _rule(
            "matview-refresh",
            "refreshes a materialized view under ACCESS EXCLUSIVE: its readers wait",
            "low low medium high medium",
            "rebuilding-indexes-and-materialized-views",
        ),
        _rule(
            "domain-check",
            "checks every column of a domain, in every table that uses it, while writes wait",
            "low low medium high medium",
            "adding-not-null-and-check-constraints",
        ),
        _rule(
            "irreversible-enum-value",
            "adds an enum value: PostgreSQL cannot remove one, so no downgrade takes it back",
            "medium medium medium medium medium",
            "changing-enum-types",
        ),
        _rule(
            "outside-transaction-only",
            "cannot run inside a transaction block, and Alembic runs each revision in one: "
            "PostgreSQL refuses it",
            "high high high high high",
            "statements-that-cannot-run-in-a-transaction",
        ),
        _rule(
            "server-wide-change",
            "changes the server, not this database's schema: other databases and sessions "
            "feel it, and no downgrade of this history undoes it",
            "medium medium medium medium medium",
            "roles-privileges-settings-and-code",
        ),
        _rule(
            "revoke",
            "revokes privileges: the application's role may lose access it uses",
            "medium medium medium medium medium",
            "roles-privileges-settings-and-code",
        ),
        _rule(
            "opaque-code",
            "runs code the analyzer cannot read: what it locks and changes is unknown",
            "medium medium medium medium medium",
            "roles-privileges-settings-and-code",
        ),
        _rule(
            "unrecognized-statement",
            "a statement type the analyzer does not know: what it locks is unknown",
            "medium medium medium medium medium",
            "roles-privileges-settings-and-code",
        ),
        _rule("squawk", "reported by squawk", "low low low low low", "squawk"),
    )
}
