"""Settings read once from the environment, with every database URL masked in reprs and errors."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

DATABASE_URL_ENV = "DATABASE_URL"
HEALTH_TIMEOUT_ENV = "AUTOPR_HEALTH_TIMEOUT"
SUPPORTED_BACKENDS = ("postgresql", "sqlite")
DEFAULT_HEALTH_TIMEOUT = 5.0

# Greedy up to the last "@" of the token: a password may itself contain "@", ":" or "/".
_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>\S*)(?=@)")
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&]password=)(?P<pw>[^&\s]*)", re.IGNORECASE)


class ConfigurationError(ValueError):
    """Raised when the environment does not describe a usable database; nothing was touched."""


def mask_url(text: str) -> str:
    """Replace every password in URLs in ``text`` with ``***``; works on malformed URLs too."""
    text = _PASSWORD_IN_URL.sub(lambda m: m["head"] + "***", text)
    return _PASSWORD_IN_QUERY.sub(lambda m: m["head"] + "***", text)


def render_url(url: URL) -> str:
    """A URL as text with its password masked."""
    return mask_url(url.render_as_string(hide_password=True))


def parse_database_url(raw: str, *, variable: str = DATABASE_URL_ENV) -> URL:
    """Parse and check a database URL, naming ``variable`` and masking the password on error."""
    shown = mask_url(raw.strip())
    try:
        url = make_url(raw.strip())
        url.get_dialect()
    except NoSuchModuleError:
        hint = " (write postgresql://, not postgres://)" if raw.startswith("postgres:") else ""
        raise ConfigurationError(
            f"{variable} names an unknown database driver: {shown}{hint}; "
            f"use postgresql://user:password@host:5432/dbname or sqlite:///path/to/file.db"
        ) from None
    except (ArgumentError, ValueError) as exc:
        # The parser's own message can quote fragments of the password; never show it.
        reason = (
            "the port is not a number; percent-encode @ : / in a password"
            if isinstance(exc, ValueError)
            else "unreadable"
        )
        raise ConfigurationError(
            f"{variable} is not a valid database URL: {shown} ({reason}); "
            f"use postgresql://user:password@host:5432/dbname or sqlite:///path/to/file.db"
        ) from None
    if url.get_backend_name() not in SUPPORTED_BACKENDS:
        raise ConfigurationError(
            f"{variable} points to {url.get_backend_name()}, which is not supported: {shown}; "
            f"use a PostgreSQL or SQLite URL"
        )
    if url.get_backend_name() == "postgresql" and not url.database:
        raise ConfigurationError(
            f"{variable} names no database: {shown}; add it after the host, as in "
            f"postgresql://user@host:5432/autopr"
        )
    return url


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
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


@cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()
