"""Each case in the corpus lints to the findings and level an expert would give it."""

from __future__ import annotations

import pytest

from autopr_migrate.analysis.lint import lint_sql
from tests.lint.corpus import CASES, Case
from tests.support.history import render_sql


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_corpus_case(case: Case) -> None:
    report = lint_sql(case.sql, sizes=case.sizes, flow_sets_timeouts=case.timeouts)
    ours = {finding.rule for finding in report.findings if finding.source == "autopr"}
    assert ours == case.rules
    assert report.level == case.level, [(f.rule, f.level) for f in report.findings]
    main = max(report.statements, key=lambda s: len(s.tables))
    if case.lock:
        assert main.lock == case.lock
    for flag in case.flags:
        assert getattr(main, flag), flag


def test_the_corpus_is_large_and_covers_every_level_and_lock() -> None:
    assert len(CASES) >= 30
    assert {case.level for case in CASES} == {"low", "medium", "high", "critical"}
    assert {
        "SHARE",
        "SHARE ROW EXCLUSIVE",
        "SHARE UPDATE EXCLUSIVE",
        "ACCESS EXCLUSIVE",
        "ROW EXCLUSIVE",
    } <= {case.lock for case in CASES}


def test_the_history_lints_as_expected() -> None:
    """AutoPR's history builds its indexes and its unique constraint through the safe operations
    and archives through safe.backfill: nothing above low, and no advice to use what it uses."""
    sql = render_sql("postgresql", "8d2e4b7c9a05", "f19c7e25b0a3")
    report = lint_sql(sql, flow_sets_timeouts=True)
    assert report.level == "low", [(f.rule, f.level) for f in report.findings]
    assert not [f for f in report.findings if f.suggestion and "safe." in f.suggestion]
    built = [s for s in report.statements if "CONCURRENTLY" in s.sql and "CREATE" in s.sql]
    assert [s.safe_operation for s in built] == ["safe.create_index", "safe.add_unique"]
    assert {s.lock for s in built} == {"SHARE UPDATE EXCLUSIVE"}
