"""A project of one revision, run by the ``alembic`` command in a process of its own, against a
fresh copy of a small shop database: orders referencing customers."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import URL, create_engine, text
from sqlalchemy.pool import NullPool

from tests.support.databases import drop_database, recreate_from_template

ENV_PY = """
import os

from alembic import context
from sqlalchemy import create_engine, pool

if context.is_offline_mode():
    context.configure(
        dialect_name=os.environ.get("SHOP_DIALECT", "postgresql"),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(os.environ["SHOP_URL"], poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
"""
REVISION = '''"""the change"""
import sqlalchemy as sa
from alembic import op

from autopr_migrate.ops import safe

revision = "c1"
down_revision = None


def upgrade():
{body}


def downgrade():
    pass
'''
SHOP = (
    "CREATE TABLE customers (id bigint PRIMARY KEY, name text);"
    "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, note text);"
    "INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 100) g;"
    "INSERT INTO orders SELECT g, 1 + mod(g, 100), 'n' || g FROM generate_series(1, {rows}) g;"
)
ROWS = 5000


class Shop:
    """``shop.upgrade(body)`` writes the revision and runs ``alembic upgrade head``."""

    def __init__(self, url: URL, directory: Path) -> None:
        self.url, self.directory = url, directory
        (directory / "versions").mkdir(parents=True, exist_ok=True)
        (directory / "env.py").write_text(ENV_PY)
        (directory / "alembic.ini").write_text(f"[alembic]\nscript_location = {directory}\n")

    def write(self, body: str) -> None:
        indented = "\n".join(f"    {line}" if line else "" for line in body.splitlines())
        (self.directory / "versions" / "c1_change.py").write_text(REVISION.format(body=indented))

    def alembic(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(self.directory / "alembic.ini"), *args],
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "SHOP_URL": self.url.render_as_string(hide_password=False),
                "SHOP_DIALECT": self.url.get_backend_name(),
                **(env or {}),
            },
            timeout=120,
        )

    def upgrade(self, body: str, *, env: dict | None = None) -> subprocess.CompletedProcess:
        """In a process of its own when ``env`` is given (a crash test kills it), else here."""
        self.write(body)
        if env is not None:
            return self.alembic("upgrade", "head", env=env)
        return self.upgrade_here()

    def upgrade_here(self) -> subprocess.CompletedProcess:
        """``alembic upgrade head`` in this process: the same outcome, without a Python start."""
        with pytest.MonkeyPatch.context() as environment:
            environment.setenv("SHOP_URL", self.url.render_as_string(hide_password=False))
            environment.setenv("SHOP_DIALECT", self.url.get_backend_name())
            try:
                command.upgrade(Config(str(self.directory / "alembic.ini")), "head")
            except Exception as exc:  # what the alembic command would print before exiting 1
                failed = f"{type(exc).__name__}: {exc}"
                return subprocess.CompletedProcess("upgrade", 1, "", failed)
        return subprocess.CompletedProcess("upgrade", 0, "", "")

    def execute(self, sql: str) -> list:
        engine = create_engine(self.url, poolclass=NullPool)
        with engine.begin() as connection:
            result = connection.execute(text(sql))
            rows = list(result) if result.returns_rows else []
        engine.dispose()
        return rows


@pytest.fixture(scope="session")
def shop_template(postgresql_admin_url) -> Iterator[str]:
    name = f"autopr_shop_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgresql_admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    engine = create_engine(postgresql_admin_url.set(database=name), poolclass=NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql(SHOP.format(rows=ROWS))
    engine.dispose()
    yield name
    drop_database(postgresql_admin_url, name)


@pytest.fixture
def new_shop(postgresql_admin_url, shop_template, tmp_path):
    """A factory: each call, a fresh copy of the shop and a project directory of its own."""
    made: list[str] = []

    def make() -> Shop:
        name = f"{shop_template}_{uuid.uuid4().hex[:6]}"
        recreate_from_template(postgresql_admin_url, name, shop_template)
        made.append(name)
        return Shop(postgresql_admin_url.set(database=name), tmp_path / name)

    yield make
    for name in made:
        drop_database(postgresql_admin_url, name)
