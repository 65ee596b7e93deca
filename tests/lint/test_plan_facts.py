"""What an earlier statement of a plan makes true, a later one is judged by: offline too."""

from __future__ import annotations

from autopr_migrate.analysis.lint import lint_sql
from autopr_migrate.analysis.model import TableStats
from autopr_migrate.analysis.walk import ColumnFact

BIG = TableStats(rows=5_000_000, bytes=2**30)


def _rules(report) -> set[str]:
    return {finding.rule for finding in report.findings if finding.source == "autopr"}


def test_a_table_created_and_renamed_in_the_plan_stays_empty() -> None:
    report = lint_sql(
        "CREATE TABLE staging_rows (id int PRIMARY KEY, note varchar(20));"
        "ALTER TABLE staging_rows RENAME TO imported_rows;"
        "CREATE INDEX ix_imported_note ON imported_rows (note);"
        "ALTER TABLE imported_rows ALTER COLUMN id TYPE bigint;",
        flow_sets_timeouts=True,
    )
    assert report.level == "low", [(f.rule, f.level) for f in report.findings]


def test_a_renamed_live_table_keeps_its_size() -> None:
    report = lint_sql(
        "ALTER TABLE workflows RENAME TO pipelines; CREATE INDEX ix_p ON pipelines (name);",
        sizes={"workflows": BIG},
        flow_sets_timeouts=True,
    )
    blocking = [f for f in report.findings if f.rule == "blocking-index"]
    assert blocking and blocking[0].level == "high" and "~5,000,000 rows" in blocking[0].message


def test_a_column_typed_earlier_in_the_plan_is_known_through_renames() -> None:
    report = lint_sql(
        "CREATE TABLE t (c varchar(20)); ALTER TABLE t RENAME COLUMN c TO d;"
        "ALTER TABLE t RENAME TO u; ALTER TABLE u ALTER COLUMN d TYPE varchar(40);",
        flow_sets_timeouts=True,
    )
    assert "table-rewrite" not in _rules(report)


def test_the_live_catalog_tells_a_widening_from_a_rewrite() -> None:
    columns = {("workflows", "name"): ColumnFact("character varying(100)", True)}
    live = {"sizes": {"workflows": BIG}, "columns": columns, "flow_sets_timeouts": True}
    widen = lint_sql("ALTER TABLE workflows ALTER COLUMN name TYPE varchar(200);", **live)
    assert widen.level == "low" and "table-rewrite" not in _rules(widen)
    retype = lint_sql("ALTER TABLE workflows ALTER COLUMN name TYPE bigint USING 0;", **live)
    assert retype.level == "critical"


def test_offline_an_unknown_column_is_rated_as_the_worst_it_may_be_and_says_so() -> None:
    report = lint_sql(
        "ALTER TABLE workflows ALTER COLUMN name TYPE varchar(200);", flow_sets_timeouts=True
    )
    (rewrite,) = [f for f in report.findings if f.rule == "table-rewrite"]
    assert rewrite.level == "high" and "unknown" in rewrite.message
    not_null = lint_sql(
        "ALTER TABLE workflows ALTER COLUMN name SET NOT NULL;", flow_sets_timeouts=True
    )
    (scan,) = [f for f in not_null.findings if f.rule == "scan-under-access-exclusive"]
    assert "unknown here whether it is NOT NULL already" in scan.message


def test_set_not_null_after_a_validated_check_or_on_a_not_null_column_scans_nothing() -> None:
    via_check = lint_sql(
        "ALTER TABLE workflows ADD CONSTRAINT nn CHECK (description IS NOT NULL) NOT VALID;"
        "ALTER TABLE workflows VALIDATE CONSTRAINT nn;"
        "ALTER TABLE workflows ALTER COLUMN description SET NOT NULL;",
        sizes={"workflows": BIG},
        flow_sets_timeouts=True,
    )
    assert "scan-under-access-exclusive" not in _rules(via_check)
    created_not_null = lint_sql(
        "ALTER TABLE workflows ADD COLUMN tier int NOT NULL DEFAULT 0;"
        "ALTER TABLE workflows ALTER COLUMN tier SET NOT NULL;",
        sizes={"workflows": BIG},
        flow_sets_timeouts=True,
    )
    assert "scan-under-access-exclusive" not in _rules(created_not_null)
    unvalidated = lint_sql(
        "ALTER TABLE workflows ADD CONSTRAINT nn CHECK (description IS NOT NULL) NOT VALID;"
        "ALTER TABLE workflows ALTER COLUMN description SET NOT NULL;",
        sizes={"workflows": BIG},
        flow_sets_timeouts=True,
    )
    assert "scan-under-access-exclusive" in _rules(unvalidated)


def test_a_dropped_check_proves_nothing_any_more() -> None:
    report = lint_sql(
        "ALTER TABLE workflows ADD CONSTRAINT nn CHECK (description IS NOT NULL) NOT VALID;"
        "ALTER TABLE workflows VALIDATE CONSTRAINT nn;"
        "ALTER TABLE workflows DROP CONSTRAINT nn;"
        "ALTER TABLE workflows ALTER COLUMN description SET NOT NULL;",
        sizes={"workflows": BIG},
        flow_sets_timeouts=True,
    )
    assert "scan-under-access-exclusive" in _rules(report)


def test_a_check_renamed_or_on_a_renamed_column_still_proves() -> None:
    report = lint_sql(
        "ALTER TABLE workflows ADD CONSTRAINT c CHECK (description IS NOT NULL) NOT VALID;"
        "ALTER TABLE workflows RENAME CONSTRAINT c TO d;"
        "ALTER TABLE workflows RENAME COLUMN description TO summary;"
        "ALTER TABLE workflows VALIDATE CONSTRAINT d;"
        "ALTER TABLE workflows ALTER COLUMN summary SET NOT NULL;",
        sizes={"workflows": BIG},
        flow_sets_timeouts=True,
    )
    assert "scan-under-access-exclusive" not in _rules(report)


def test_a_live_table_renamed_onto_a_new_tables_old_name_keeps_its_size() -> None:
    report = lint_sql(
        "CREATE TABLE t_new (id int); ALTER TABLE t_new RENAME TO t_done;"
        "ALTER TABLE workflows RENAME TO t_new; ALTER TABLE t_new ALTER COLUMN id TYPE bigint;",
        sizes={"workflows": BIG},
        flow_sets_timeouts=True,
    )
    assert report.level == "critical"


def test_a_table_in_another_schema_is_another_table() -> None:
    columns = {("users", "email"): ColumnFact("text", True)}
    report = lint_sql(
        "CREATE TABLE archive.users (id int); ALTER TABLE archive.users ALTER COLUMN email "
        "SET NOT NULL; ALTER TABLE users ALTER COLUMN id TYPE bigint;",
        sizes={"users": BIG},
        columns=columns,
        flow_sets_timeouts=True,
    )
    assert report.level == "critical"


def test_a_time_zone_set_in_the_script_decides_the_timestamp_conversion() -> None:
    columns = {("events", "at"): ColumnFact("timestamp without time zone", False)}
    sql = "ALTER TABLE events ALTER COLUMN at TYPE timestamptz;"
    live = {
        "sizes": {"events": BIG},
        "columns": columns,
        "flow_sets_timeouts": True,
        "utc_session": True,
    }
    assert lint_sql(sql, **live).level == "low"
    assert lint_sql("SET TIME ZONE 'Europe/Berlin';" + sql, **live).level == "critical"
