"""The application's settings, read once from the environment; its URL is parsed (and masked
everywhere) by the migration library's ``parse_database_url``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from sqlalchemy.engine import URL

from autopr_migrate.errors import ConfigurationError
from autopr_migrate.targets.urls import DATABASE_URL_ENV, parse_database_url, render_url

HEALTH_TIMEOUT_ENV = "AUTOPR_HEALTH_TIMEOUT"
DEFAULT_HEALTH_TIMEOUT = 5.0
SHOWN_INPUT_CHARACTERS = 80

__all__ = ["DATABASE_URL_ENV", "ConfigurationError", "Settings", "get_settings", "render_url"]


@dataclass(frozen=True)
class Settings:
    """The application's settings; the repr never shows a password."""

    database_url: URL = field(repr=False)
    health_timeout: float = DEFAULT_HEALTH_TIMEOUT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default: the process environment).

        Raises:
            ConfigurationError: ``DATABASE_URL`` is missing or malformed, or a timeout is
                not a positive number.
        """
        environ = os.environ if environ is None else environ
        raw = environ.get(DATABASE_URL_ENV, "").strip()
        if not raw:
            raise ConfigurationError(
                f"{DATABASE_URL_ENV} is not set; set it to the database to use, e.g. "
                f"postgresql://user@127.0.0.1:5432/autopr or sqlite:///autopr.db"
            )
        return cls(
            database_url=parse_database_url(raw),
            health_timeout=_positive_float(environ, HEALTH_TIMEOUT_ENV, DEFAULT_HEALTH_TIMEOUT),
        )

    @property
    def masked_database_url(self) -> str:
        return render_url(self.database_url)

    def __repr__(self) -> str:
        return (
            f"Settings(database_url={self.masked_database_url!r}, "
            f"health_timeout={self.health_timeout!r})"
        )


def _positive_float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigurationError(
            f"{name} must be a positive number of seconds, got {raw[:SHOWN_INPUT_CHARACTERS]!r}"
        )
    return value


@cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()
