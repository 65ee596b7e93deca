"""Database URLs: parsed and checked once, and shown only without their passwords.

A URL names a PostgreSQL or SQLite database. Its password is registered with the masking
function as soon as it is parsed, so a driver that quotes it later is masked too; a URL whose
password holds an unencoded ``@`` (its tail would land in the host, the database or the query,
where a driver quotes it back) is refused with the percent-encoding advice.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from autopr_migrate.errors import ConfigurationError
from autopr_migrate.masking import mask_secrets, redact_credentials, register_secret

DATABASE_URL_ENV = "DATABASE_URL"
SUPPORTED_BACKENDS = ("postgresql", "sqlite")
SHOWN_INPUT_CHARACTERS = 80
_URL_FORMS = "use postgresql://user:password@host:5432/dbname or sqlite:///path/to/file.db"
_ENCODE_ADVICE = (
    "percent-encode the characters @ : / ? # % and spaces in the user name and password "
    "(%40 for an at sign)"
)


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
