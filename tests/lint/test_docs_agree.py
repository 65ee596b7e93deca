"""The rules table in docs/zero-downtime.md is the rule catalogue in flows/lint/rules.py."""

from __future__ import annotations

import re

from autopr_migrate.analysis.rules import RULES
from tests.support.alembic_run import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "zero-downtime.md"


def test_every_rule_is_documented_with_the_same_levels() -> None:
    documented = {}
    for line in DOC.read_text().splitlines():
        match = re.match(
            r"^\| `([a-z-]+)` \| .*? \| (\w+) \| (\w+) \| (\w+) \| (\w+) \| (\w+) \|$", line
        )
        if match:
            documented[match.group(1)] = match.groups()[1:]
    ours = {name: rule.levels for name, rule in RULES.items() if name != "squawk"}
    assert documented == ours


def test_every_suggestion_points_at_a_section() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^## (.+)$", DOC.read_text(), re.MULTILINE)
    }
    assert {rule.anchor for rule in RULES.values()} <= anchors
