"""A fleet's decisions as plain functions: who is selected, in which wave, when to stop, and
what a member may apply."""

from __future__ import annotations

import pytest

from autopr_migrate.errors import ConfigurationError, PreflightRefused
from autopr_migrate.operations.census import Member
from autopr_migrate.operations.rollout import (
    budget_exceeded,
    plan_digest,
    require_approved_plan,
    waves,
)
from autopr_migrate.policy.parameters import FleetApproval, RolloutPolicy
from autopr_migrate.targets.selection import known_targets, select_targets

MIB = 1 << 20


def _members(sizes: dict[str, int]) -> list[Member]:
    return [Member(name, "a1", "s", size) for name, size in sizes.items()]


def test_the_canary_is_the_smallest_and_waves_follow_by_size_then_name():
    members = _members({"c": 5 * MIB, "a": 9 * MIB, "b": 1 * MIB, "d": 5 * MIB + 10, "e": 7 * MIB})
    assert waves(members, RolloutPolicy(canary=1, wave_size=2)) == [["b"], ["c", "d"], ["e", "a"]]
    assert waves(members, RolloutPolicy(canary=0, wave_percent=50)) == [["b", "c", "d"], ["e", "a"]]
    assert waves(members, RolloutPolicy(canary=2, wave_percent=100)) == [
        ["b", "c"],
        ["d", "e", "a"],
    ]
    assert waves([], RolloutPolicy()) == []


def test_the_error_budget_counts_failures_or_their_share():
    assert not budget_exceeded(1, 20, RolloutPolicy(max_failures=1))
    assert budget_exceeded(2, 20, RolloutPolicy(max_failures=1))
    assert budget_exceeded(1, 20, RolloutPolicy())  # no failure tolerated by default
    share = RolloutPolicy(max_failure_percent=10)  # the share, instead of the count
    assert not budget_exceeded(2, 20, share) and budget_exceeded(3, 20, share)
    assert not budget_exceeded(1, 100, share)


def test_a_member_applies_only_the_plan_its_fleet_approved():
    checksums = {"b1": "0" * 64}
    approval = FleetApproval(
        fleet_id="f1",
        fleet_run_id="00000000-0000-0000-0000-000000000001",
        approved_by="ops",
        from_revision="a1",
        to_revision="b1",
        plan_digest=plan_digest("a1", "b1", checksums),
    )
    require_approved_plan(approval, "a1", "b1", checksums)
    with pytest.raises(PreflightRefused, match="it moved since the census"):
        require_approved_plan(approval, "a0", "b1", checksums)
    with pytest.raises(PreflightRefused, match="other revision files than this worker has"):
        require_approved_plan(approval, "a1", "b1", {"b1": "1" * 64})


def test_targets_are_selected_by_name_glob_group_and_label(tmp_path):
    config = tmp_path / "fleet.toml"
    config.write_text(
        '[targets.tenant-1]\nlabels = ["eu"]\n[targets.tenant-2]\nlabels = ["us"]\n'
        '[groups]\nfirst = ["tenant-1", "shop-*"]\n'
    )
    environ = {
        "AUTOPR_MIGRATE_CONFIG": str(config),
        "AUTOPR_DB_TENANT_3_URL": "sqlite:///x.db",
        "AUTOPR_DB_TENANT_3_HEALTH_URL": "http://127.0.0.1/health",
        "AUTOPR_DB_SHOP_A_URL": "sqlite:///y.db",
        "AUTOPR_DB_EMPTY_URL": " ",
    }
    assert known_targets(environ, ["vault-1"]) == [
        "shop-a",
        "tenant-1",
        "tenant-2",
        "tenant-3",
        "vault-1",
    ]
    assert select_targets(["tenant-*"], environ) == ["tenant-1", "tenant-2", "tenant-3"]
    assert select_targets(["group:first", "label:us", "tenant-1"], environ) == [
        "tenant-1",
        "shop-a",
        "tenant-2",
    ]
    with pytest.raises(ConfigurationError, match="selector 'nobody-\\*' matches no known target"):
        select_targets(["nobody-*"], environ)
    with pytest.raises(ConfigurationError, match="group 'second' is not declared"):
        select_targets(["group:second"], environ)
    with pytest.raises(ConfigurationError, match="a fleet needs targets"):
        select_targets([], environ)
    with pytest.raises(ConfigurationError, match="is not valid"):
        select_targets(["Bad Name"], environ)
