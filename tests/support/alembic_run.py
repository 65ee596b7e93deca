"""Run the project's Alembic history: in-process on a test connection, or as the plain CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic import command
from sqlalchemy import URL, Engine

from autopr.config import DATABASE_URL_ENV
from autopr.database.schema import ALEMBIC_INI, database_revision
from tests.support.history import make_config

PROJECT_ROOT = ALEMBIC_INI.parent
ALEMBIC_BIN = Path(sys.executable).with_name("alembic")


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.connect() as connection:
        command.upgrade(make_config(connection=connection), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.connect() as connection:
        command.downgrade(make_config(connection=connection), revision)


def revision_of(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return database_revision(connection)


def alembic_cli(
    *args: str, url: URL | str | None, cwd: Path = PROJECT_ROOT
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``alembic`` command with ``DATABASE_URL`` set to ``url``."""
    env = {k: v for k, v in os.environ.items() if k != DATABASE_URL_ENV}
    if url is not None:
        env[DATABASE_URL_ENV] = (
            url if isinstance(url, str) else url.render_as_string(hide_password=False)
        )
    return subprocess.run(
        [str(ALEMBIC_BIN), "-c", str(ALEMBIC_INI), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
