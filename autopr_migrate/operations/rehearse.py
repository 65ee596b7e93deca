"""Rehearsal: the upgrade, its downgrade and the upgrade again, on a throwaway copy.

PostgreSQL: a dump taken now is restored into a scratch database on the same server, which is
always dropped (stale ones from a killed run are dropped first). SQLite: a copy of the file.
What the operator learns: how long each revision takes on real data, and whether the
downgrade really returns the schema to where it started.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from autopr_migrate.backends import pgtools
from autopr_migrate.backends.connections import connect
from autopr_migrate.backends.fingerprint import differences, fingerprint
from autopr_migrate.backends.lock_sampler import MIGRATING_APPLICATION
from autopr_migrate.backends.registry import backend_for
from autopr_migrate.errors import BackupFailed, PreflightRefused, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.history.isolated import in_own_process, shared
from autopr_migrate.history.runtime import SessionSettings
from autopr_migrate.operations.backup import take_backup
from autopr_migrate.operations.load_rehearsal import LoadMeasurement, under_load
from autopr_migrate.operations.preflight import PreflightReport
from autopr_migrate.operations.scratch import scratch_copy
from autopr_migrate.operations.workloads import read_workload_file
from autopr_migrate.policy.parameters import BackupPolicy, ImpactPolicy, RehearsalPolicy
from autopr_migrate.store.directory import ready_backup_directory
from autopr_migrate.targets.targets import Target

SCRATCH_PREFIX = "autopr_rehearsal_"
SETTLE_SECONDS = 1.0
LOG = logging.getLogger(__name__)


@dataclass
class Rehearsal:
    rows: int = 0
    upgrade_seconds: float = 0.0
    downgrade_seconds: float | None = None
    revision_seconds: dict[str, float] = field(default_factory=dict)
    reversible: bool | None = None
    schema_differences: list[str] = field(default_factory=list)
    skipped: str | None = None
    failed: str | None = None
    # revision -> the statements its upgrade ran on the copy, for plans that cannot render
    recorded: dict[str, str] = field(default_factory=dict)
    upgrade_window: tuple[float, float] | None = None  # epoch seconds
    load: LoadMeasurement | None = None
    load_skipped: str | None = None
    load_missing: bool = False  # asked for, and could not be measured

    def line(self) -> str:
        if self.skipped:
            return f"not rehearsed: {self.skipped}"
        reversible = {True: "yes", False: "**no**", None: "unknown"}[self.reversible]
        if self.reversible is False and self.schema_differences:
            reversible += f" ({'; '.join(self.schema_differences[:3])})"
        if self.failed and self.upgrade_seconds == 0:
            return f"**the rehearsal on a copy FAILED**: {self.failed}"
        down = f"{self.downgrade_seconds:.2f} s" if self.downgrade_seconds is not None else "failed"
        line = (
            f"rehearsed on a copy of {self.rows:,} rows: upgrade took "
            f"{self.upgrade_seconds:.2f} s, downgrade {down}, reversible: {reversible}"
        )
        return f"{line}; **then FAILED**: {self.failed}" if self.failed else line


def rehearse(
    target: Target,
    checks: PreflightReport,
    policy: RehearsalPolicy,
    *,
    impact: ImpactPolicy | None = None,
    tables: list[str] | tuple[str, ...] = (),
    log: logging.Logger | logging.LoggerAdapter = LOG,
) -> Rehearsal:
    """Run the plan on a copy; never raises for a failure on the copy (it is reported).

    With ``impact``, the copy's upgrade runs under that workload, on ``tables`` (the plan's).
    """
    if not policy.enabled:
        return Rehearsal(skipped="rehearsal is switched off by the policy")
    if impact is not None and impact.rehearse_under_load and impact.workload_file:
        read_workload_file(impact.workload_file)  # refused before anything is copied
    if checks.database_bytes > policy.skip_above_bytes:
        return Rehearsal(
            skipped=f"the database ({checks.database_bytes} bytes) is above "
            f"policy.rehearsal.skip_above_bytes"
        )
    with connect(target) as connection:
        allowed = backend_for(target).may_create_databases(connection)
    if not allowed:
        raise PreflightRefused(
            f"the role of target {target.name!r} may not create databases, so the plan cannot "
            f"be rehearsed on a copy: grant it CREATEDB, or set policy.rehearsal.enabled=false"
        )
    directory = ready_backup_directory(target)
    with tempfile.TemporaryDirectory(prefix=".rehearsal-", dir=directory) as scratch_dir:
        copy_target = replace(target, backup_dir=Path(scratch_dir))
        try:
            dump = take_backup(
                copy_target,
                BackupPolicy(),
                label="rehearsal",
                database_bytes=checks.database_bytes,
                log=log,
            )
            with (
                scratch_copy(target, dump, Path(scratch_dir), prefix=SCRATCH_PREFIX) as scratch,
                under_load(
                    target,
                    scratch,
                    impact or ImpactPolicy(rehearse_under_load=False),
                    list(tables),
                    Path(scratch_dir),
                    log=log,
                ) as measuring,
            ):
                settle = SETTLE_SECONDS if measuring.loaded else 0.0
                result = _rehearse_on_copy(scratch, checks, settle)
                measuring.window = result.upgrade_window
                measuring.settle = settle
        except (BackupFailed, pgtools.ToolError, sqlite3.Error) as exc:
            return Rehearsal(failed=f"the copy could not be made: {exc}")
    result.rows = sum(dump.row_counts.values())
    result.load, result.load_skipped = measuring.measurement, measuring.skipped
    result.load_missing = measuring.missing
    log.info("%s", result.line())
    return result


def _rehearse_on_copy(scratch: Target, checks: PreflightReport, settle: float) -> Rehearsal:
    """Up, down and up again; for a project run in processes of its own, all in one."""
    project = scratch.project
    if not project.isolated:
        return _rehearse_on(scratch, checks, settle)
    url = scratch.url.render_as_string(hide_password=False)
    here = replace(scratch, project=shared(project))
    return in_own_process(project, url, lambda _: _rehearse_on(here, checks, settle))


def _rehearse_on(scratch: Target, checks: PreflightReport, settle: float) -> Rehearsal:
    """``settle``: seconds the upgraded copy stays as it is before the downgrade, so a workload
    the change breaks shows it."""
    result = Rehearsal()
    with connect(scratch) as connection:
        marked = _as_migration(connection)
        before = fingerprint(connection, version_table=scratch.project.version_table)
        began = time.time()
        started = time.monotonic()
        clock = [started]

        def applied(revision: str, _doc: str, _up: bool) -> None:
            now = time.monotonic()
            result.revision_seconds[revision] = round(now - clock[0], 3)
            clock[0] = now

        heard: dict[str, list[str]] = {}
        try:
            alembic_ops.upgrade(
                scratch.project,
                connection,
                checks.target_revision,
                on_revision=applied,
                recorded=heard,
                session=marked,
            )
        except Exception as exc:  # the copy shows the failure before production sees it
            result.failed = f"the upgrade fails: {describe(exc)}"
            return result
        finally:
            result.recorded = {rev: "\n".join(statements) for rev, statements in heard.items()}
            result.upgrade_window = (began, time.time())
        result.upgrade_seconds = round(time.monotonic() - started, 3)
        time.sleep(settle)
        try:
            started = time.monotonic()
            alembic_ops.downgrade(scratch.project, connection, checks.current)
            result.downgrade_seconds = round(time.monotonic() - started, 3)
        except Exception as exc:  # an irreversible plan is a finding, not a failure
            result.reversible = False
            result.schema_differences = [f"the downgrade fails: {describe(exc)}"]
            return result
        after = fingerprint(connection, version_table=scratch.project.version_table)
        result.schema_differences = differences(before, after)
        result.reversible = not result.schema_differences
        try:
            alembic_ops.upgrade(scratch.project, connection, checks.target_revision)
        except Exception as exc:  # up, down, then up again must work too
            result.failed = f"the second upgrade, after the downgrade, fails: {describe(exc)}"
    return result


def _as_migration(connection) -> SessionSettings:
    """The copy's migrating sessions carry the migration's ``application_name``, so the lock
    sampler tells them from the workload's."""
    statement = f"SET application_name = '{MIGRATING_APPLICATION}'"
    if connection.dialect.name != "postgresql":
        return SessionSettings()
    connection.exec_driver_sql(statement)
    connection.commit()
    return SessionSettings(statements={"postgresql": (statement,)})


def require(rehearsal: Rehearsal, policy: RehearsalPolicy) -> None:
    """With ``must_succeed``, a failed or skipped rehearsal stops the run before approval."""
    if policy.must_succeed and (rehearsal.failed or rehearsal.skipped):
        raise PreflightRefused(
            f"the policy requires a successful rehearsal, and this one did not happen or "
            f"failed: {rehearsal.failed or rehearsal.skipped}"
        )
