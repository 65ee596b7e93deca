"""Migration SQL cases with the findings and risk level an expert reviewer would give them.

Sizes are unknown here (linting without a database) unless a case says ``sizes``; ``timeouts``
means the SQL runs under the migrate flow, which sets lock_timeout itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from autopr_migrate.analysis.model import TableStats

BIG = TableStats(rows=5_000_000, bytes=900 * 2**20)
SMALL = TableStats(rows=200, bytes=64 * 1024)
EMPTY = TableStats(rows=0, bytes=16 * 1024)


@dataclass(frozen=True)
class Case:
    name: str
    sql: str
    rules: set[str]
    level: str
    timeouts: bool = True
    sizes: dict[str, TableStats] | None = None
    lock: str | None = None
    flags: set[str] = field(default_factory=set)


CASES = [
    Case(
        "create-table",
        "CREATE TABLE labels (id bigint PRIMARY KEY, name text NOT NULL);",
        set(),
        "low",
    ),
    Case(
        "create-table-with-fk",
        "CREATE TABLE labels (id bigint PRIMARY KEY, "
        "workflow_id bigint REFERENCES workflows (id));",
        set(),
        "low",
        lock="SHARE ROW EXCLUSIVE",
    ),
    Case(
        "add-nullable-column",
        "ALTER TABLE workflows ADD COLUMN note text;",
        set(),
        "low",
        lock="ACCESS EXCLUSIVE",
    ),
    Case(
        "add-column-constant-default",
        "ALTER TABLE workflows ADD COLUMN tries integer NOT NULL DEFAULT 0;",
        set(),
        "low",
        flags=set(),
    ),
    Case(
        "add-column-volatile-default",
        "ALTER TABLE workflows ADD COLUMN token uuid DEFAULT gen_random_uuid();",
        {"table-rewrite"},
        "high",
        flags={"rewrites"},
    ),
    Case(
        "add-required-column",
        "ALTER TABLE workflows ADD COLUMN owner text NOT NULL;",
        {"required-column-without-default"},
        "high",
    ),
    Case(
        "add-required-column-to-empty-table",
        "ALTER TABLE workflows ADD COLUMN owner text NOT NULL;",
        {"required-column-without-default"},
        "low",
        sizes={"workflows": EMPTY},
    ),
    Case(
        "change-type",
        "ALTER TABLE workflow_executions ALTER COLUMN duration_seconds TYPE numeric;",
        {"table-rewrite"},
        "high",
        flags={"rewrites", "scans"},
    ),
    Case(
        "change-type-big-table",
        "ALTER TABLE workflow_executions ALTER COLUMN status TYPE text;",
        {"table-rewrite"},
        "critical",
        sizes={"workflow_executions": BIG},
    ),
    Case(
        "change-type-small-table",
        "ALTER TABLE workflow_executions ALTER COLUMN status TYPE text;",
        {"table-rewrite"},
        "low",
        sizes={"workflow_executions": SMALL},
    ),
    Case(
        "set-not-null",
        "ALTER TABLE workflows ALTER COLUMN description SET NOT NULL;",
        {"scan-under-access-exclusive"},
        "medium",
        flags={"scans", "validates"},
    ),
    Case(
        "set-not-null-big",
        "ALTER TABLE workflows ALTER COLUMN description SET NOT NULL;",
        {"scan-under-access-exclusive"},
        "high",
        sizes={"workflows": BIG},
    ),
    Case(
        "drop-not-null",
        "ALTER TABLE workflows ALTER COLUMN description DROP NOT NULL;",
        set(),
        "low",
    ),
    Case(
        "check-constraint",
        "ALTER TABLE workflows ADD CONSTRAINT ck_version CHECK (version > 0);",
        {"scan-under-access-exclusive"},
        "medium",
    ),
    Case(
        "check-not-valid",
        "ALTER TABLE workflows ADD CONSTRAINT ck_version CHECK (version > 0) NOT VALID;",
        set(),
        "low",
    ),
    Case(
        "validate-constraint",
        "ALTER TABLE workflows VALIDATE CONSTRAINT ck_version;",
        {"validate-constraint"},
        "low",
        lock="SHARE UPDATE EXCLUSIVE",
        flags={"scans", "validates"},
    ),
    Case(
        "foreign-key",
        "ALTER TABLE workflow_executions ADD CONSTRAINT fk_pr FOREIGN KEY "
        "(pull_request_id) REFERENCES pull_requests (id);",
        {"foreign-key-validation"},
        "medium",
        lock="SHARE ROW EXCLUSIVE",
    ),
    Case(
        "foreign-key-big",
        "ALTER TABLE workflow_executions ADD CONSTRAINT fk_pr FOREIGN KEY "
        "(pull_request_id) REFERENCES pull_requests (id);",
        {"foreign-key-validation"},
        "high",
        sizes={"workflow_executions": BIG, "pull_requests": SMALL},
    ),
    Case(
        "foreign-key-not-valid",
        "ALTER TABLE workflow_executions ADD CONSTRAINT fk_pr "
        "FOREIGN KEY (pull_request_id) REFERENCES pull_requests (id) NOT VALID;",
        set(),
        "low",
    ),
    Case(
        "unique-constraint",
        "ALTER TABLE pull_requests ADD CONSTRAINT uq_pr UNIQUE (repository_id, number);",
        {"unique-constraint-build"},
        "high",
    ),
    Case(
        "unique-using-index",
        "ALTER TABLE pull_requests ADD CONSTRAINT uq_pr UNIQUE USING INDEX uq_pr_idx;",
        set(),
        "low",
    ),
    Case(
        "primary-key",
        "ALTER TABLE labels ADD PRIMARY KEY (id);",
        {"unique-constraint-build"},
        "critical",
        sizes={"labels": BIG},
    ),
    Case(
        "create-index",
        "CREATE INDEX ix_status ON workflows (status);",
        {"blocking-index"},
        "medium",
        lock="SHARE",
    ),
    Case(
        "create-index-big",
        "CREATE INDEX ix_status ON workflow_executions (status);",
        {"blocking-index"},
        "high",
        sizes={"workflow_executions": BIG},
    ),
    Case(
        "create-index-concurrently",
        "CREATE INDEX CONCURRENTLY ix_status ON workflows (status);",
        {"non-transactional"},
        "low",
        lock="SHARE UPDATE EXCLUSIVE",
        flags={"non_transactional"},
    ),
    Case(
        "concurrently-in-transaction",
        "BEGIN; CREATE INDEX CONCURRENTLY ix_status ON workflows (status); COMMIT;",
        {"concurrently-in-transaction"},
        "high",
    ),
    Case(
        "index-on-new-table",
        "CREATE TABLE labels (id bigint); CREATE INDEX ix_l ON labels (id);",
        set(),
        "low",
    ),
    Case(
        "drop-index",
        "DROP INDEX ix_status;",
        {"blocking-index-drop"},
        "low",
        lock="ACCESS EXCLUSIVE",
    ),
    Case(
        "drop-index-concurrently",
        "DROP INDEX CONCURRENTLY ix_status;",
        {"non-transactional"},
        "low",
    ),
    Case(
        "drop-column",
        "ALTER TABLE workflows DROP COLUMN description;",
        {"data-loss"},
        "high",
        flags={"destroys_data"},
    ),
    Case(
        "drop-table",
        "DROP TABLE workflow_status_changes;",
        {"data-loss"},
        "high",
        flags={"destroys_data"},
    ),
    Case(
        "drop-table-big",
        "DROP TABLE workflow_executions;",
        {"data-loss"},
        "critical",
        sizes={"workflow_executions": BIG},
    ),
    Case("drop-empty-table", "DROP TABLE legacy;", {"data-loss"}, "low", sizes={"legacy": EMPTY}),
    Case("truncate", "TRUNCATE workflow_executions;", {"data-loss"}, "high"),
    Case(
        "rename-column",
        "ALTER TABLE workflows RENAME COLUMN description TO summary;",
        {"breaking-rename"},
        "high",
    ),
    Case("rename-table", "ALTER TABLE workflows RENAME TO pipelines;", {"breaking-rename"}, "high"),
    Case(
        "backfill-without-where",
        "UPDATE workflows SET version = 1;",
        {"unbatched-backfill"},
        "medium",
        lock="ROW EXCLUSIVE",
    ),
    Case(
        "backfill-big",
        "UPDATE workflow_executions SET status = 'done';",
        {"unbatched-backfill"},
        "high",
        sizes={"workflow_executions": BIG},
    ),
    Case(
        "backfill-batched",
        "UPDATE workflow_executions SET status = 'done' WHERE id BETWEEN 1 AND 10000;",
        set(),
        "low",
    ),
    Case(
        "delete-everything",
        "DELETE FROM workflow_status_changes;",
        {"data-loss", "unbatched-backfill"},
        "high",
    ),
    Case(
        "vacuum-full",
        "VACUUM FULL workflow_executions;",
        {"table-rewrite"},
        "critical",
        sizes={"workflow_executions": BIG},
    ),
    Case(
        "no-lock-timeout",
        "ALTER TABLE workflows ADD COLUMN note text;",
        {"missing-lock-timeout"},
        "medium",
        timeouts=False,
    ),
    Case(
        "lock-timeout-set-in-script",
        "SET lock_timeout = '5s'; ALTER TABLE workflows ADD COLUMN note text;",
        set(),
        "low",
        timeouts=False,
    ),
    Case(
        "lock-timeout-reset-to-zero",
        "SET lock_timeout = 0; ALTER TABLE workflows ADD COLUMN note text;",
        {"missing-lock-timeout"},
        "medium",
        timeouts=False,
    ),
    Case(
        "insert-select",
        "INSERT INTO labels (workflow_id) SELECT id FROM workflows;",
        set(),
        "low",
        lock="ROW EXCLUSIVE",
    ),
]
