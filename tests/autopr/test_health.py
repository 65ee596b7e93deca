"""/health on real databases, in-process (httpx ASGITransport) and through a real uvicorn server."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import URL, text
from sqlalchemy.pool import NullPool

from autopr.config import Settings
from autopr.database import make_engine
from autopr.health import create_app
from tests.support.alembic_run import upgrade
from tests.support.history import heads
from tests.support.servers import serve

pytestmark = pytest.mark.both_dialects  # their behaviour differs by dialect

HEAD = heads()[0]
BEFORE_VERSION_COLUMN = "8d2e4b7c9a05"
TIMEOUT = 0.5  # the blocked database's test
PATIENT = 5.0  # every other test: a busy machine's answer is no failure of theirs
PASSWORD = "health-Secret-pw"


def _in_process(settings: Settings) -> httpx.Response:
    app = create_app(settings)

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://autopr") as client:
            return await client.get("/health")

    try:
        return asyncio.run(get())
    finally:
        app.state.engine.dispose()


def _over_http(settings: Settings) -> httpx.Response:
    with serve(create_app(settings)) as base_url:
        return httpx.get(f"{base_url}/health", timeout=10)


CLIENTS = {"in-process": _in_process, "uvicorn": _over_http}


@pytest.fixture(params=sorted(CLIENTS))
def get_health(request: pytest.FixtureRequest) -> Callable[[URL], httpx.Response]:
    client = CLIENTS[request.param]
    return lambda url, timeout=PATIENT: client(Settings(database_url=url, health_timeout=timeout))


def _migrated(url: URL, revision: str = "head") -> URL:
    engine = make_engine(url, poolclass=NullPool)
    upgrade(engine, revision)
    engine.dispose()
    return url


def _execute(url: URL, sql: str) -> None:
    engine = make_engine(url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text(sql))
    engine.dispose()


def test_database_at_head_is_healthy(database_url: URL, get_health) -> None:
    response = get_health(_migrated(database_url))
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "revision": HEAD,
        "code_head": HEAD,
        "revision_known": True,
    }


def test_database_ahead_of_the_code_is_healthy_and_reported(database_url: URL, get_health) -> None:
    url = _migrated(database_url)
    _execute(url, "UPDATE alembic_version SET version_num = 'a1b2c3d4e5f6'")
    response = get_health(url)
    assert response.status_code == 200
    body = response.json()
    assert body["revision"] == "a1b2c3d4e5f6"
    assert body["revision_known"] is False
    assert body["code_head"] == HEAD


def test_empty_database_is_unavailable_with_missing_tables(database_url: URL, get_health) -> None:
    _execute(database_url, "SELECT 1")  # creates the SQLite file
    response = get_health(database_url)
    assert response.status_code == 503
    body = response.json()
    assert body["reason"].startswith("missing table ")
    assert body["revision"] is None


def test_missing_column_is_named(database_url: URL, get_health) -> None:
    response = get_health(_migrated(database_url, BEFORE_VERSION_COLUMN))
    assert response.status_code == 503
    assert response.json()["reason"] == "missing column workflows.version"
    assert response.json()["revision"] == BEFORE_VERSION_COLUMN


def test_missing_table_is_named(database_url: URL, get_health) -> None:
    url = _migrated(database_url)
    _execute(url, "DROP TABLE api_tokens")
    response = get_health(url)
    assert response.status_code == 503
    assert response.json()["reason"] == "missing table api_tokens"


@pytest.fixture(params=["sqlite", "postgresql"])
def unreachable_url(request: pytest.FixtureRequest, tmp_path) -> URL:
    if request.param == "sqlite":
        return URL.create("sqlite", database=str(tmp_path / "no-such.db"))
    return URL.create(
        "postgresql", username="autopr", password=PASSWORD, host="127.0.0.1", port=1, database="x"
    )


def test_unreachable_database_is_unavailable_without_secrets(
    unreachable_url: URL, get_health, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    response = get_health(unreachable_url)
    assert response.status_code == 503
    assert response.json()["reason"] == "database unreachable"
    assert response.json()["code_head"] == HEAD
    assert PASSWORD not in response.text + caplog.text
    assert not (tmp_path / "no-such.db").exists()  # the probe never creates a database


@contextmanager
def _exclusive_lock(url: URL) -> Iterator[None]:
    """Hold a lock that blocks every reader: the way a long migration looks to the probe."""
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(url.database, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return
    engine = make_engine(url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))
        yield
    engine.dispose()


def test_a_blocked_database_answers_within_the_timeout(database_url: URL, get_health) -> None:
    url = _migrated(database_url)
    with _exclusive_lock(url):
        started = time.monotonic()
        response = get_health(url, TIMEOUT)
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["reason"] == f"database did not answer within {TIMEOUT:g} s"
    assert elapsed < TIMEOUT + 1.5
