"""Which backend serves a target."""

from __future__ import annotations

from sqlalchemy import Connection

from autopr_migrate.backends import postgresql, sqlite
from autopr_migrate.backends.dialects import Backend, SessionFacts
from autopr_migrate.errors import ConfigurationError
from autopr_migrate.targets.targets import Target

BACKENDS: dict[str, Backend] = {"postgresql": postgresql.BACKEND, "sqlite": sqlite.BACKEND}


def backend_for(target: Target) -> Backend:
    try:
        return BACKENDS[target.dialect]
    except KeyError:
        raise ConfigurationError(
            f"target {target.name!r} uses {target.dialect!r}: supported are "
            f"{', '.join(sorted(BACKENDS))}"
        ) from None


def session_facts(connection: Connection) -> SessionFacts:
    """The session's database and settings, read the way its own dialect's backend reads them
    (a project's ``env.py`` may have connected to another kind of database than the target)."""
    backend = BACKENDS.get(connection.dialect.name)
    if backend is None:
        return SessionFacts(f"a {connection.dialect.name} database", "unknown", {})
    return backend.session_facts(connection)
