"""The rules a run is held to before it touches anything, called directly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import make_url

from autopr_migrate.errors import ConfigurationError
from autopr_migrate.operations.rules import (
    needed_time,
    require_person_for_production,
    require_requester,
    require_window_for_production,
    windows_text,
)
from autopr_migrate.policy.parameters import ApprovalPolicy, MigrationWindow, WindowPolicy
from autopr_migrate.targets.targets import Target

NOON = MigrationWindow(cron="0 12 * * *", timezone="UTC", duration_minutes=60, name="noon")


def _target(production: bool) -> Target:
    url = make_url("sqlite:////tmp/rules.db")
    return Target("prod" if production else "dev", url, "http://127.0.0.1:1/health",
                  Path("/tmp/rules-backups"), production=production)  # fmt: skip


@pytest.mark.parametrize("requested_by", ["", "   ", "\u200b", "\u2800"])
def test_four_eyes_needs_a_visible_requester(requested_by) -> None:
    with pytest.raises(ConfigurationError, match="requested_by is empty"):
        require_requester(ApprovalPolicy(), requested_by, flow="migrate")


def test_a_requester_is_not_needed_without_four_eyes_or_without_approval() -> None:
    require_requester(ApprovalPolicy(four_eyes=False), "", flow="migrate")
    require_requester(ApprovalPolicy(mode="never"), "", flow="migrate")
    require_requester(ApprovalPolicy(), "ops", flow="migrate")


def test_production_needs_a_person_and_a_window() -> None:
    with pytest.raises(ConfigurationError, match="mode=never is not allowed"):
        require_person_for_production(_target(True), ApprovalPolicy(mode="never"))
    with pytest.raises(ConfigurationError, match="no migration window"):
        require_window_for_production(_target(True), WindowPolicy())
    require_person_for_production(_target(False), ApprovalPolicy(mode="never"))
    require_window_for_production(_target(False), WindowPolicy())
    require_window_for_production(_target(True), WindowPolicy(windows=[NOON]))


def test_the_time_an_upgrade_needs() -> None:
    policy = WindowPolicy(safety_factor=2, minimum_minutes=5)
    assert needed_time(policy, 600, 0) == timedelta(minutes=20)  # rehearsed, doubled
    assert needed_time(policy, 1, 0) == timedelta(minutes=5)  # never below the minimum
    estimated = needed_time(policy, None, 100 * 20 * 2**20)  # 100 s at 20 MiB/s, doubled
    assert estimated == timedelta(minutes=5)
    assert needed_time(policy, None, 1000 * 20 * 2**20) == timedelta(seconds=2000)


def test_windows_in_words() -> None:
    assert windows_text(WindowPolicy()).startswith("any time")
    assert windows_text(WindowPolicy(windows=[NOON])) == "noon `0 12 * * *` UTC, 60 min"
