"""Target names resolve to databases from the environment or a Prefect Secret block."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.blocks.system import Secret

from autopr_migrate.errors import ConfigurationError
from autopr_migrate.orchestration.secrets import secret_block
from autopr_migrate.targets.targets import resolve_target


def test_environment_variable_names_the_database(monkeypatch) -> None:
    monkeypatch.setenv("AUTOPR_DB_STAGING_URL", "postgresql://app:pw@db/staging")
    monkeypatch.setenv("AUTOPR_DB_STAGING_HEALTH_URL", "http://app.internal/health")
    target = resolve_target("staging")
    assert target.url.database == "staging"
    assert target.health_url == "http://app.internal/health"
    assert target.backup_dir == Path("backups/staging").absolute()
    assert "pw" not in repr(target)
    assert target.production is False


def test_secret_block_is_used_when_no_variable_is_set(monkeypatch) -> None:
    Secret(value="postgresql://app:pw@vault-db/tenant").save("autopr-db-tenant-7", overwrite=True)
    monkeypatch.setenv("AUTOPR_DB_TENANT_7_HEALTH_URL", "http://tenant-7/health")
    assert resolve_target("tenant-7", secrets=secret_block).url.host == "vault-db"


def test_database_url_serves_only_the_default_target(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///default.db")
    assert resolve_target("default").url.database == "default.db"
    with pytest.raises(ConfigurationError, match=r"AUTOPR_DB_OTHER_URL.*autopr-db-other"):
        resolve_target("other")


def test_production_targets(monkeypatch) -> None:
    for name in ("prod", "eu-west"):
        monkeypatch.setenv(f"AUTOPR_DB_{name.upper().replace('-', '_')}_URL", "sqlite:///x.db")
        monkeypatch.setenv(f"AUTOPR_DB_{name.upper().replace('-', '_')}_HEALTH_URL", "http://x/")
    monkeypatch.setenv("AUTOPR_DB_EU_WEST_PRODUCTION", "true")
    assert resolve_target("prod").production and resolve_target("eu-west").production


@pytest.mark.parametrize("name", ["Prod", "a_b", "-x", "", "x" * 41])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match="is not valid"):
        resolve_target(name)


def test_a_target_without_a_health_url_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("AUTOPR_DB_QA_URL", "sqlite:///qa.db")
    with pytest.raises(ConfigurationError, match="AUTOPR_DB_QA_HEALTH_URL"):
        resolve_target("qa")
