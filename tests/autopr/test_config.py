from __future__ import annotations

import pytest

from autopr.config import ConfigurationError, Settings
from autopr_migrate.masking import mask_secrets

SECRET = "pa55-Word"


@pytest.mark.parametrize(
    "raw",
    [
        f"postgresql://app:{SECRET}@db.internal:5432/autopr",
        f"postgresql+psycopg2://app:{SECRET}@db.internal/autopr?sslmode=require",
        "sqlite:///var/lib/autopr/autopr.db",
    ],
)
def test_valid_urls_are_read_and_never_shown_with_their_password(raw: str) -> None:
    settings = Settings.from_env({"DATABASE_URL": raw})
    assert settings.database_url.render_as_string(hide_password=False) == raw
    assert SECRET not in repr(settings) + str(settings) + settings.masked_database_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "DATABASE_URL is not set"),
        (f"postgres://app:{SECRET}@db/autopr", "write postgresql://"),
        (f"postgresql://app:{SECRET}@db:port/autopr", "the port is not a number"),
        (f"postgresql://app:p@{SECRET}:w@rd@db/autopr", "percent-encode"),
        (f"mysql://app:{SECRET}@db/autopr", "not supported"),
        (f"postgresql://app:{SECRET}@db", "names no database"),
        ("just words", "not a valid database URL"),
    ],
)
def test_bad_urls_name_the_variable_and_mask_the_password(raw: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        Settings.from_env({"DATABASE_URL": raw})
    message = str(excinfo.value)
    assert expected in message
    assert "DATABASE_URL" in message
    assert SECRET not in message
    assert "\n" not in message


def test_settings_are_read_from_the_process_environment(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///autopr.db")
    monkeypatch.setenv("AUTOPR_HEALTH_TIMEOUT", "2.5")
    settings = Settings.from_env()
    assert settings.database_url.database == "autopr.db"
    assert settings.health_timeout == 2.5


@pytest.mark.parametrize("raw", ["0", "-1", "soon"])
def test_health_timeout_must_be_positive(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="AUTOPR_HEALTH_TIMEOUT"):
        Settings.from_env({"DATABASE_URL": "sqlite:///a.db", "AUTOPR_HEALTH_TIMEOUT": raw})


def test_mask_url_hides_passwords_inside_longer_text() -> None:
    text = f"failed: postgresql://app:{SECRET}@h/db and postgresql://x@h/db?password={SECRET}"
    masked = mask_secrets(text)
    assert SECRET not in masked
    assert "postgresql://app:***@h/db" in masked
    assert "postgresql://x@h/db" in masked
