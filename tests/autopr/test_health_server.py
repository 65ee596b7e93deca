"""``python -m autopr.health`` as an operator starts it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
from sqlalchemy import URL
from sqlalchemy.pool import NullPool

from autopr.database import make_engine
from tests.support.alembic_run import PROJECT_ROOT, upgrade
from tests.support.history import heads


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environ(url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url, "AUTOPR_HEALTH_TIMEOUT": "2"}


def test_module_serves_health_on_the_given_port(sqlite_url: URL) -> None:
    engine = make_engine(sqlite_url, poolclass=NullPool)
    upgrade(engine)
    engine.dispose()
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "autopr.health", "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=_environ(sqlite_url.render_as_string()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "the health server did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json()["revision"] == heads()[0]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_module_refuses_a_malformed_url_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "autopr.health", "--port", str(_free_port())],
        cwd=PROJECT_ROOT,
        env=_environ("postgresql://app:Hidden-pw@db:nope/autopr"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "DATABASE_URL is not a valid database URL" in result.stderr
    assert "Hidden-pw" not in result.stderr
