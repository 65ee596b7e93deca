"""Which backend serves a target."""

from __future__ import annotations

from autopr_migrate.backends import postgresql, sqlite
from autopr_migrate.backends.dialects import Backend
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
