"""The Alembic project a target's history lives in: its config file and its models' metadata.

Today one project serves every target: the ``alembic.ini`` named by ``AUTOPR_ALEMBIC_CONFIG``,
else the one in the working directory (as plain ``alembic`` finds it), and the models whose
``MetaData`` drift is measured against, named by import path (``AUTOPR_MODELS_METADATA``, by
default AutoPR Engine's). The library never imports a project's code by name: it loads it.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from sqlalchemy import MetaData

from autopr_migrate.errors import ConfigurationError

ALEMBIC_CONFIG_ENV = "AUTOPR_ALEMBIC_CONFIG"
MODELS_METADATA_ENV = "AUTOPR_MODELS_METADATA"
DEFAULT_MODELS_METADATA = "autopr.database.models:Base.metadata"


def alembic_ini() -> Path:
    """The project's ``alembic.ini``: ``AUTOPR_ALEMBIC_CONFIG``, else ``./alembic.ini``."""
    override = os.environ.get(ALEMBIC_CONFIG_ENV, "").strip()
    return Path(override or "alembic.ini").absolute()


def models_metadata() -> MetaData:
    """The ``MetaData`` of the project's models, loaded from ``module:attribute.path``.

    Raises:
        ConfigurationError: the path does not name a ``MetaData``.
    """
    spec = os.environ.get(MODELS_METADATA_ENV, "").strip() or DEFAULT_MODELS_METADATA
    module_name, _, attributes = spec.partition(":")
    try:
        found = importlib.import_module(module_name)
        for attribute in attributes.split(".") if attributes else ():
            found = getattr(found, attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"{MODELS_METADATA_ENV}={spec[:80]!r} names no models ({type(exc).__name__}); set "
            f"it to module:attribute of the project's MetaData, e.g. myapp.models:Base.metadata"
        ) from None
    if not isinstance(found, MetaData):
        raise ConfigurationError(f"{MODELS_METADATA_ENV}={spec[:80]!r} is not a MetaData")
    return found
