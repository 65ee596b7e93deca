"""The line a safe operation writes above each rendered sub-step, as the lint reads it."""

from __future__ import annotations

import pytest

from autopr_migrate.analysis.lint import lint_sql

BUILD = "-- safe.create_index (build)\nCREATE INDEX CONCURRENTLY i ON t (a);\n"


def _rules(sql: str) -> list[tuple[int, str, str | None]]:
    report = lint_sql(sql, flow_sets_timeouts=True, squawk=False)
    return [(f.statement, f.rule, f.suggestion) for f in report.findings]


def test_a_marked_concurrent_build_needs_no_advice_and_an_unmarked_one_still_gets_it() -> None:
    by_hand = "CREATE INDEX CONCURRENTLY j ON t (a);\n"
    found = _rules(BUILD + by_hand)
    assert [(number, rule) for number, rule, _ in found] == [(2, "non-transactional")]


def test_the_marker_hides_no_risk_and_no_advice_on_a_statement_it_does_not_fit() -> None:
    spoofed = "-- safe.create_index (build)\nCREATE INDEX i ON big (a);\n"
    assert [rule for _, rule, _ in _rules(spoofed)] == ["blocking-index"]
    assert "use safe.create_index" in _rules(spoofed)[0][2]
    update = "-- safe.create_index (build)\nUPDATE big SET a = 1;\n"
    assert [rule for _, rule, _ in _rules(update)] == ["unbatched-backfill"]  # not a backfill's


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("-- safe.backfill (whole)\nDELETE FROM big WHERE a > 1;", "unbatched-backfill"),
        ("-- safe.backfill (whole)\nCREATE INDEX CONCURRENTLY i ON t (a);", "non-transactional"),
        ("-- safe.backfillish (whole)\nUPDATE big SET a = 1;", "unbatched-backfill"),
        ("/*\n-- safe.backfill (whole)\n*/\nUPDATE big SET a = 1;", "unbatched-backfill"),
        (
            "-- safe.create_index (attach)\nCREATE INDEX CONCURRENTLY i ON t (a);",
            "non-transactional",
        ),
    ],
)
def test_a_marker_exempts_only_the_statement_its_operation_renders_there(sql, rule) -> None:
    assert rule in [found for _, found, _ in _rules(sql)]


def test_the_marker_belongs_to_the_statement_right_below_it_whatever_the_text_above() -> None:
    accents = "-- " + "é" * 65 + "\n"
    sql = accents + BUILD + "-- é\nCREATE INDEX CONCURRENTLY j ON t (a);\n"
    found = _rules(sql)
    assert [(number, rule) for number, rule, _ in found] == [(2, "non-transactional")]
    report = lint_sql(sql, squawk=False)
    assert [s.sql for s in report.statements] == [
        "CREATE INDEX CONCURRENTLY i ON t (a)",
        "CREATE INDEX CONCURRENTLY j ON t (a)",
    ]
    assert [s.line for s in report.statements] == [2, 4]
