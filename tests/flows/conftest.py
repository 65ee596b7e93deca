"""A real Prefect API for the flow tests, real health servers, and targets to migrate."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prefect import get_client
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import URL, Engine
from sqlalchemy.pool import NullPool

from autopr.config import Settings
from autopr.database import make_engine
from autopr.health import create_app
from autopr_migrate.policy.parameters import (
    ApprovalPolicy,
    ImpactPolicy,
    LockPolicy,
    MigrationPolicy,
    PreflightPolicy,
    ProbePolicy,
    RehearsalPolicy,
)
from tests.support.servers import serve


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> Iterator[None]:
    # The server subprocess inherits the environment: persist events every 0.5 s, not 5 s, so
    # tests that read events back do not sit out the flush.
    os.environ.setdefault("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL", "0.5")
    with _started_harness(), temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@contextmanager
def _started_harness(attempts: int = 3) -> Iterator[None]:
    """The temporary Prefect API. Its start polls /api/health and gives up on the first reset
    connection ("Server disconnected without sending a response", a port taken between being
    found free and being bound), which four workers starting servers at once on two cores
    sometimes see: start another rather than fail every test of this worker."""
    for attempt in range(1, attempts + 1):
        with ExitStack() as stack:
            try:
                stack.enter_context(prefect_test_harness(server_startup_timeout=60))
            except httpx.TransportError:
                if attempt == attempts:
                    raise
                time.sleep(2)
                continue
            yield
            return


@pytest.fixture(autouse=True)
def fresh_concurrency_limits() -> Iterator[None]:
    """Every test starts with no run's lease on ``migrate-<target>``: a run an earlier test left
    going (paused, or killed) must not hold a later test's slot."""
    yield
    with get_client(sync_client=True) as client:
        for limit in client.read_global_concurrency_limits(limit=200):
            if limit.name.startswith("migrate-"):
                with suppress(ObjectNotFound):
                    client.delete_global_concurrency_limit_by_name(limit.name)


@dataclass
class MigrationTarget:
    name: str
    url: URL
    health_url: str
    backup_dir: Path

    def engine(self) -> Engine:
        return make_engine(self.url, poolclass=NullPool)


def fast_policy(
    *,
    lock: dict | None = None,
    preflight: dict | None = None,
    approval: dict | None = None,
    rehearsal: dict | None = None,
    impact: dict | None = None,
) -> MigrationPolicy:
    """Short waits, so a failing run fails in seconds; no approval unless asked for; no load on
    the rehearsal's copy unless asked for."""
    approval = {"mode": "never", "poll_interval_seconds": 1, **(approval or {})}
    probe = {"consecutive_successes": 2, "interval_seconds": 0.2, "deadline_seconds": 1.5}
    return MigrationPolicy(
        approval=ApprovalPolicy(**approval),
        lock=LockPolicy(**{"wait_seconds": 30, "lock_timeout_seconds": 2, **(lock or {})}),
        preflight=PreflightPolicy(**{"connect_timeout_seconds": 5, **(preflight or {})}),
        rehearsal=RehearsalPolicy(**(rehearsal or {"enabled": False})),
        impact=ImpactPolicy(**(impact or {"rehearse_under_load": False})),
        probe=ProbePolicy(**probe, request_timeout_seconds=2),
    )


@pytest.fixture
def migration_target(
    database_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MigrationTarget]:
    """Target ``app`` on the test database, with its application's /health served over HTTP."""
    app = create_app(Settings(database_url=database_url, health_timeout=2))
    with serve(app) as base_url:
        target = MigrationTarget("app", database_url, f"{base_url}/health", tmp_path / "backups")
        monkeypatch.setenv("AUTOPR_DB_APP_URL", database_url.render_as_string(hide_password=False))
        monkeypatch.setenv("AUTOPR_DB_APP_HEALTH_URL", target.health_url)
        monkeypatch.setenv("AUTOPR_DB_APP_BACKUP_DIR", str(target.backup_dir))
        yield target
    app.state.engine.dispose()
