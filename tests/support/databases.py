"""Create and drop real PostgreSQL databases; checksum the rows of every table."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import URL, Connection, create_engine, inspect, make_url, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from autopr_migrate.backends import pgtools

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TEST_DATABASE_URL_ENV = "AUTOPR_TEST_DATABASE_URL"


def admin_url_from_env() -> URL:
    return make_url(os.environ.get(TEST_DATABASE_URL_ENV) or DEFAULT_ADMIN_URL)


def check_postgresql_answers(admin_url: URL) -> str | None:
    """``None`` if the server answers and may create databases, else one line on what to do."""
    engine = create_engine(admin_url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            allowed = connection.scalar(
                text("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
            )
    except DBAPIError as exc:
        shown = admin_url.render_as_string(hide_password=True)
        return (
            f"PostgreSQL at {shown} does not answer ({str(exc.orig).strip().splitlines()[0]}); "
            f"run bin/ensure-postgres or set {TEST_DATABASE_URL_ENV}"
        )
    finally:
        engine.dispose()
    if not allowed:
        return f"the role in {TEST_DATABASE_URL_ENV} may not create databases; grant CREATEDB"
    return None


def _autocommit(admin_url: URL):
    return create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")


def create_database(admin_url: URL, prefix: str = "autopr_test") -> URL:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = _autocommit(admin_url)
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return admin_url.set(database=name)


@contextmanager
def new_database(admin_url: URL) -> Iterator[URL]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    url = create_database(admin_url)
    try:
        yield url
    finally:
        drop_database(admin_url, url.database)


def recreate_from_template(admin_url: URL, name: str, template: str) -> None:
    """Replace database ``name`` with a file-level copy of ``template`` (rows, statistics)."""
    engine = _autocommit(admin_url)
    with engine.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    engine.dispose()


def drop_database(admin_url: URL, name: str) -> None:
    engine = _autocommit(admin_url)
    with engine.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


def table_checksums(connection: Connection, *, exclude: frozenset[str] = frozenset()) -> dict:
    """``{table: (row count, sha256 of all rows in primary-key order)}`` for every table."""
    inspector = inspect(connection)
    result = {}
    for name in sorted(inspector.get_table_names()):
        if name in exclude:
            continue
        table = _reflect(connection, name)
        order = list(table.primary_key.columns) or list(table.columns)
        digest = hashlib.sha256()
        count = 0
        for row in connection.execute(select(table).order_by(*order)):
            digest.update(repr(tuple(row)).encode())
            count += 1
        result[name] = (count, digest.hexdigest())
    return result


def _reflect(connection: Connection, name: str):
    from sqlalchemy import MetaData, Table

    return Table(name, MetaData(), autoload_with=connection)


def schema_only(url: URL) -> str:
    """``pg_dump --schema-only`` of the database, without its comments and session lines."""
    dumped = pgtools.run([pgtools.binary("pg_dump"), "--schema-only", "--no-owner"], url=url).stdout
    return "\n".join(
        line
        for line in dumped.splitlines()
        if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))
    )
