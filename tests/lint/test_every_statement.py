"""Every statement type PostgreSQL's parser knows is rated or named harmless; none crashes lint."""

from __future__ import annotations

import inspect

import pglast.ast
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autopr_migrate.analysis.analyzer import HANDLERS, LintError, analyze
from autopr_migrate.analysis.kinds import HARMLESS
from autopr_migrate.analysis.lint import lint_sql
from autopr_migrate.cli.lint import lint_text

STATEMENT_TYPES = sorted(
    name
    for name, node in vars(pglast.ast).items()
    if inspect.isclass(node) and name.endswith("Stmt")
)

# Destructive or locking statements, and the level each deserves offline (sizes unknown, no
# lock_timeout promised): the rule that says what it does, and the level a reviewer would give.
DESTRUCTIVE = [
    ("CLUSTER workflows USING ix_workflows_status", "table-rewrite", "high"),
    ("CLUSTER", "table-rewrite", "critical"),
    ("VACUUM FULL workflows", "table-rewrite", "high"),
    ("ALTER TABLE workflows SET TABLESPACE fast", "table-rewrite", "high"),
    ("ALTER TABLE ALL IN TABLESPACE a SET TABLESPACE b", "table-rewrite", "critical"),
    ("DROP SCHEMA legacy CASCADE", "drop-cascade", "critical"),
    ("TRUNCATE workflows CASCADE", "drop-cascade", "critical"),
    ("DROP OWNED BY app", "drop-cascade", "critical"),
    ("DROP DATABASE autopr", "drop-database", "critical"),
    ("DROP TABLE workflows", "data-loss", "high"),
    ("DROP SCHEMA legacy", "drop-object", "medium"),
    ("DROP VIEW active_workflows", "drop-object", "medium"),
    ("DROP FUNCTION refresh_stats()", "drop-object", "medium"),
    ("DROP SEQUENCE workflow_numbers", "drop-object", "medium"),
    ("LOCK TABLE workflows IN ACCESS EXCLUSIVE MODE", "explicit-lock", "high"),
    ("LOCK TABLE workflows IN SHARE MODE", "explicit-lock", "high"),
    ("REINDEX TABLE workflows", "reindex", "medium"),
    ("REINDEX DATABASE autopr", "reindex", "high"),
    ("REFRESH MATERIALIZED VIEW workflow_stats", "matview-refresh", "medium"),
    ("ALTER TYPE workflow_status ADD VALUE 'paused'", "irreversible-enum-value", "medium"),
    ("ALTER TYPE workflow_status RENAME VALUE 'old' TO 'new'", "breaking-rename", "high"),
    (
        "UPDATE workflow_executions SET status = 'done' WHERE status = 'running'",
        "unbatched-backfill",
        "medium",
    ),
    ("UPDATE workflow_executions SET status = 'done'", "unbatched-backfill", "medium"),
    (
        "MERGE INTO workflows w USING incoming i ON w.id = i.id "
        "WHEN MATCHED THEN UPDATE SET name = i.name",
        "unbatched-backfill",
        "medium",
    ),
    ("EXPLAIN ANALYZE DELETE FROM workflows", "data-loss", "high"),
    ("BEGIN; VACUUM workflows; COMMIT;", "outside-transaction-only", "high"),
    ("BEGIN; REINDEX TABLE CONCURRENTLY workflows; COMMIT;", "concurrently-in-transaction", "high"),
    ("ALTER TABLE workflows SET SCHEMA archive", "breaking-rename", "high"),
    ("ALTER VIEW active_workflows RENAME TO live_workflows", "breaking-rename", "high"),
    (
        "ALTER DOMAIN positive ADD CONSTRAINT positive_check CHECK (VALUE > 0)",
        "domain-check",
        "medium",
    ),
    ("REVOKE SELECT ON workflows FROM app", "revoke", "medium"),
    ("ALTER SYSTEM SET work_mem = '1GB'", "server-wide-change", "medium"),
    ("ALTER ROLE app NOLOGIN", "server-wide-change", "medium"),
    ("DO $$ BEGIN DELETE FROM workflows; END $$", "opaque-code", "medium"),
    ("CALL archive_everything()", "opaque-code", "medium"),
    # Columns PostgreSQL must fill row by row: a rewrite, however the value is spelled.
    ("ALTER TABLE users ADD COLUMN n bigserial", "table-rewrite", "high"),
    ("ALTER TABLE users ADD COLUMN n int GENERATED ALWAYS AS IDENTITY", "table-rewrite", "high"),
    (
        "ALTER TABLE users ADD COLUMN n int GENERATED ALWAYS AS (id * 2) STORED",
        "table-rewrite",
        "high",
    ),
    ("ALTER TABLE users ADD COLUMN n float8 DEFAULT (random() * 10)", "table-rewrite", "high"),
    ("ALTER TABLE users ADD COLUMN n text DEFAULT md5(random()::text)", "table-rewrite", "high"),
    # Writes hidden inside reads.
    ("WITH gone AS (DELETE FROM users RETURNING 1) SELECT count(*) FROM gone", "data-loss", "high"),
    ("COPY (DELETE FROM users RETURNING id) TO STDOUT", "data-loss", "high"),
    (
        "EXPLAIN ANALYZE WITH g AS (DELETE FROM users RETURNING 1) SELECT 1 FROM g",
        "data-loss",
        "high",
    ),
    ("COPY users FROM PROGRAM 'curl example.com'", "server-wide-change", "medium"),
    ("ALTER DOMAIN email SET NOT NULL", "domain-check", "medium"),
    # An IF NOT EXISTS table may be the big one that is there.
    ("CREATE TABLE IF NOT EXISTS users (id int); DELETE FROM users", "data-loss", "high"),
    # lock_timeout that is not in force, however it is spelled.
    (
        "SET lock_timeout = '0min'; ALTER TABLE users ADD COLUMN n int",
        "missing-lock-timeout",
        "medium",
    ),
    (
        "BEGIN; SET LOCAL lock_timeout = '2s'; COMMIT; ALTER TABLE users ADD COLUMN n int",
        "missing-lock-timeout",
        "medium",
    ),
    (
        "SET lock_timeout = '2s'; RESET ALL; ALTER TABLE users ADD COLUMN n int",
        "missing-lock-timeout",
        "medium",
    ),
    ("DROP INDEX users_email_idx", "missing-lock-timeout", "medium"),
    (
        "BEGIN; COMMIT AND CHAIN; CREATE INDEX CONCURRENTLY ix ON users (a)",
        "concurrently-in-transaction",
        "high",
    ),
    (
        "BEGIN; ALTER TABLE events DETACH PARTITION events_2024 CONCURRENTLY; COMMIT",
        "outside-transaction-only",
        "high",
    ),
    (
        "ALTER TABLE events ATTACH PARTITION events_2025 FOR VALUES IN (2025)",
        "scan-under-access-exclusive",
        "medium",
    ),
    (
        "ALTER TABLE bookings ADD CONSTRAINT no_overlap EXCLUDE USING gist (span WITH &&)",
        "unique-constraint-build",
        "high",
    ),
    ("ALTER AGGREGATE total(int) RENAME TO grand_total", "breaking-rename", "high"),
    ("ALTER ROUTINE refresh() RENAME TO reload", "breaking-rename", "high"),
]
CASE_IDS = [sql[:40] for sql, _, _ in DESTRUCTIVE]
HARMLESS_SQL = [
    "SELECT count(*) FROM workflows",
    "EXPLAIN DELETE FROM workflows",
    "GRANT SELECT ON workflows TO app",
    "COMMENT ON TABLE workflows IS 'what runs'",
    "CREATE SCHEMA reporting",
    "VACUUM workflows",
    "ANALYZE workflows",
    "REINDEX TABLE CONCURRENTLY workflows",
    "LOCK TABLE workflows IN ROW EXCLUSIVE MODE",
    "UPDATE workflows SET name = 'x' WHERE id = 7",
    "DELETE FROM workflows WHERE id BETWEEN 1 AND 1000",
]


def test_every_statement_type_is_rated_or_named_harmless() -> None:
    assert len(STATEMENT_TYPES) > 100
    unclassified = [name for name in STATEMENT_TYPES if name not in HANDLERS | HARMLESS.keys()]
    assert unclassified == []
    assert not set(HANDLERS) & HARMLESS.keys()


@pytest.mark.parametrize(("sql", "rule", "level"), DESTRUCTIVE, ids=CASE_IDS)
def test_destructive_statements_get_the_level_they_deserve(sql: str, rule: str, level: str):
    report = lint_text(sql)
    assert rule in {finding.rule for finding in report.findings}, report.findings
    assert report.level == level, [(f.rule, f.level) for f in report.findings]


@pytest.mark.parametrize("sql", HARMLESS_SQL)
def test_harmless_statements_stay_low(sql: str) -> None:
    report = lint_text(sql, assume_lock_timeout=True)
    assert report.level == "low", [(f.rule, f.level, f.message) for f in report.findings]


def test_a_statement_after_a_nul_is_never_ignored() -> None:
    with pytest.raises(LintError, match="NUL"):
        analyze("SELECT 1;\x00DROP TABLE users;")


IDENTIFIER = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)
TEMPLATES = [
    "ALTER TABLE {0} ALTER COLUMN {1} TYPE varchar({n})",
    "ALTER TABLE {0} RENAME TO {1}",
    "ALTER TABLE {0} ALTER COLUMN {1} SET NOT NULL",
    "CREATE TABLE {0} ({1} int)",
    "DROP TABLE {0} CASCADE",
    "CREATE INDEX CONCURRENTLY {0} ON {1} ({1})",
    "LOCK TABLE {0} IN ACCESS EXCLUSIVE MODE",
    "UPDATE {0} SET {1} = {n} WHERE id = {n}",
    "ALTER TABLE {0} ADD CONSTRAINT {1} CHECK ({1} IS NOT NULL) NOT VALID",
    "ALTER TABLE {0} VALIDATE CONSTRAINT {1}",
    "ALTER TABLE {0} RENAME COLUMN {1} TO {0}",
    "REINDEX INDEX {0}",
    "CLUSTER {0}",
    "TRUNCATE {0}",
    "DROP INDEX CONCURRENTLY {0}",
    "ALTER TYPE {0} ADD VALUE 'x{n}'",
    "BEGIN",
    "COMMIT",
    "SET lock_timeout = '{n}s'",
]
SCRIPTS = st.lists(
    st.tuples(st.sampled_from(TEMPLATES), IDENTIFIER, IDENTIFIER, st.integers(0, 500)).map(
        lambda parts: parts[0].format(parts[1], parts[2], n=parts[3])
    ),
    min_size=1,
    max_size=12,
).map(lambda statements: ";\n".join(statements) + ";")


@given(SCRIPTS)
def test_any_script_of_known_statements_lints_without_crashing(script: str) -> None:
    try:
        report = lint_sql(script, squawk=False)
    except LintError:
        return  # an identifier that is a reserved word: refused as SQL, never a crash
    assert report.level in ("low", "medium", "high", "critical")


@given(st.text(max_size=300))
def test_any_text_is_linted_or_refused_never_crashes(text: str) -> None:
    try:
        analyze(text)
    except LintError as exc:
        assert "\n" not in str(exc)
