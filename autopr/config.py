"""Settings read once from the environment, with every database URL masked in reprs and errors."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from autopr.masking import mask_secrets, redact_credentials, register_secret

DATABASE_URL_ENV = "DATABASE_URL"
HEALTH_TIMEOUT_ENV = "AUTOPR_HEALTH_TIMEOUT"
SUPPORTED_BACKENDS = ("postgresql", "sqlite")
DEFAULT_HEALTH_TIMEOUT = 5.0
SHOWN_INPUT_CHARACTERS = 80
_URL_FORMS = "use postgresql://user:password@host:5432/dbname or sqlite:///path/to/file.db"
_ENCODE_ADVICE = (
    "percent-encode the characters @ : / ? # % and spaces in the user name and password "
    "(%40 for an at sign)"
)


class ConfigurationError(ValueError):
    """Raised when the environment does not describe a usable database; nothing was touched."""


def render_url(url: URL) -> str:
    """A URL as text with its password masked."""
    return mask_secrets(url.render_as_string(hide_password=True))


def shown_url(raw: str) -> str:
    """How an unparsed URL may be quoted: no user or password, at most 80 characters."""
    shown = redact_credentials(raw.strip())
    if len(shown) <= SHOWN_INPUT_CHARACTERS:
        return shown
    return f"{shown[:SHOWN_INPUT_CHARACTERS]}... ({len(shown):,} characters)"


def parse_database_url(raw: str, *, variable: str = DATABASE_URL_ENV) -> URL:
    """Parse and check a database URL, naming ``variable`` and masking the password on error.

    The password (and a ``password`` query parameter) is registered with ``mask_secrets``, so
    a driver message that quotes it later is masked too.
    """
    raw = raw.strip()
    shown = shown_url(raw)
    try:
        url = make_url(raw)
        url.get_dialect()
    except NoSuchModuleError:
        hint = " (write postgresql://, not postgres://)" if raw.startswith("postgres:") else ""
        raise ConfigurationError(
            f"{variable} names an unknown database driver: {shown}{hint}; {_URL_FORMS}"
        ) from None
    except (ArgumentError, ValueError) as exc:
        # The parser's own message can quote fragments of the password; never show it.
        reason = (
            f"the port is not a number; {_ENCODE_ADVICE}"
            if isinstance(exc, ValueError)
            else f"unreadable; {_ENCODE_ADVICE}"
        )
        raise ConfigurationError(
            f"{variable} is not a valid database URL: {shown} ({reason}); {_URL_FORMS}"
        ) from None
    # One "@" ends the user and password (a user name may hold more, as Azure's user@server);
    # any other "@" is a password's, unencoded, and its tail went into the host, the database
    # or the query, where a driver would quote it back.
    if url.password is not None and raw.count("@") > 1 + (url.username or "").count("@"):
        raise ConfigurationError(
            f"{variable} has an unencoded at sign in its user name or password ({shown}); "
            f"{_ENCODE_ADVICE}"
        )
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
    register_secret(url.password if isinstance(url.password, str) else None)
    for key, value in url.query.items():
        if key.lower() in ("password", "sslpassword"):
            for item in (value,) if isinstance(value, str) else value:
                register_secret(item)
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
        raise ConfigurationError(
            f"{name} must be a positive number of seconds, got {raw[:SHOWN_INPUT_CHARACTERS]!r}"
        )
    return value


@cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()
