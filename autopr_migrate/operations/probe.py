"""Probe the application's /health until it is healthy at the expected revision, or give up.

After an upgrade the application answering is usually still the previous release (migrations
run before the deploy), and that release still working on the new schema is what the probe
must prove. The database's revision is read directly, not taken from the application.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import httpx
from sqlalchemy.exc import DBAPIError

from autopr_migrate.backends.connections import connect
from autopr_migrate.errors import DatabaseUnreachable, HealthCheckFailed
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.masking import mask_secrets
from autopr_migrate.policy.parameters import ProbePolicy
from autopr_migrate.targets.targets import Target

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthSnapshot:
    """One answer of /health: ``status_code`` is None when nothing answered."""

    status_code: int | None
    reason: str
    revision: str | None = None

    @property
    def healthy(self) -> bool:
        return self.status_code == 200

    @property
    def answered(self) -> bool:
        return self.status_code is not None


def check_health(url: str, *, timeout: float) -> HealthSnapshot:
    """Ask ``url`` once."""
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return HealthSnapshot(None, f"no answer from {mask_secrets(url)}: {type(exc).__name__}")
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    reason = "ok" if response.status_code == 200 else str(body.get("reason") or response.text[:200])
    return HealthSnapshot(response.status_code, mask_secrets(reason), body.get("revision"))


@dataclass(frozen=True)
class ProbeResult:
    healthy: bool
    checks: int
    seconds: float
    last_reason: str


def _database_revision(target: Target) -> str | Exception | None:
    try:
        with connect(target, connect_timeout=5) as connection:
            return alembic_ops.current(target.project, connection)
    except (DatabaseUnreachable, DBAPIError) as exc:
        return exc


def probe_health(
    target: Target,
    expected_revision: str | None,
    policy: ProbePolicy,
    *,
    application_expected: bool = True,
    log: logging.Logger | logging.LoggerAdapter = LOG,
) -> ProbeResult:
    """Wait for ``consecutive_successes`` healthy answers at ``expected_revision``.

    With ``application_expected`` False (a new database with no application yet), only the
    database's revision is checked.

    Raises:
        HealthCheckFailed: the deadline passed first.
    """
    started = time.monotonic()
    deadline = started + policy.deadline_seconds
    in_a_row = checks = 0
    reason = "not checked yet"
    while True:
        checks += 1
        revision = _database_revision(target)
        if isinstance(revision, Exception):
            reason, in_a_row = f"database unreachable: {revision}", 0
        elif revision != expected_revision:
            reason, in_a_row = f"database at {revision or 'base'}, expected {expected_revision}", 0
        elif not application_expected:
            reason, in_a_row = "database at the expected revision (no application)", in_a_row + 1
        else:
            snapshot = check_health(target.health_url, timeout=policy.request_timeout_seconds)
            reason = snapshot.reason
            in_a_row = in_a_row + 1 if snapshot.healthy else 0
        log.info(
            "health check %d: %s (%d/%d healthy in a row)",
            checks,
            reason,
            in_a_row,
            policy.consecutive_successes,
        )
        if in_a_row >= policy.consecutive_successes:
            return ProbeResult(True, checks, time.monotonic() - started, reason)
        if time.monotonic() + policy.interval_seconds > deadline:
            raise HealthCheckFailed(
                f"the application was not healthy at revision {expected_revision or 'base'} "
                f"within {policy.deadline_seconds:g} s ({checks} checks); last: {reason}"
            )
        time.sleep(policy.interval_seconds)
