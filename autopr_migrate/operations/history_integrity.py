"""Tamper detection: are the revision files that built this database still the ones that ran?

Each successful upgrade records the sha256 of the revision files it applied in the ledger. A
file changed after it ran means the history no longer describes the database: a fresh
environment built from it would differ from production, and a downgrade would run code nobody
reviewed. Revisions applied before the first run through the flows (plain ``alembic
upgrade``) are recorded as they are by that first successful run, and judged from then on. A
revision rewritten on purpose declares the earlier texts it replaces (``equivalent_sha256``):
those are reported, not refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select

from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.history.equivalence import declared_equivalents
from autopr_migrate.store import ledger
from autopr_migrate.targets.project import Project

if TYPE_CHECKING:  # preflight reports the problems found here
    from autopr_migrate.operations.preflight import PreflightReport

CHANGED, MISSING, UNKNOWN = "changed", "missing", "unknown"


@dataclass(frozen=True)
class HistoryProblem:
    revision: str
    kind: str  # changed | missing | unknown
    detail: str
    current_sha256: str | None = None

    def line(self) -> str:
        return f"{self.revision}: {self.detail}"


@dataclass(frozen=True)
class DeclaredRewrite:
    """An applied revision file rewritten since it ran, whose new text declares the one that
    ran equivalent."""

    revision: str
    ran_sha256: str
    current_sha256: str
    reason: str

    def line(self) -> str:
        return (
            f"{self.revision}: rewritten since it ran here (sha256 {self.ran_sha256[:12]}..., "
            f"now {self.current_sha256[:12]}...), declared equivalent by the revision: "
            f"{self.reason}"
        )


@dataclass(frozen=True)
class HistoryCheck:
    problems: list[HistoryProblem]
    rewrites: list[DeclaredRewrite]


def recorded_checksums(connection: Connection) -> dict[str, str]:
    """``{revision: sha256}`` as the successful upgrades recorded them (the latest record wins)."""
    if not ledger.exists(connection):
        return {}
    table = ledger.ledger
    rows = connection.execute(
        select(table.c.revision_checksums)
        .where(table.c.status == ledger.SUCCEEDED, table.c.operation == "upgrade")
        .order_by(table.c.id)
    ).scalars()
    recorded: dict[str, str] = {}
    for text in rows:
        try:
            recorded.update(json.loads(text or "{}"))
        except (TypeError, ValueError):
            continue
    return recorded


def check_applied(project: Project, connection: Connection) -> list[HistoryProblem]:
    """Problems with the revisions the database has applied; empty when the history is intact."""
    return judge_applied(project, connection).problems


def judge_applied(project: Project, connection: Connection) -> HistoryCheck:
    """The applied revisions' problems, and the rewrites their files declare equivalent."""
    current = alembic_ops.current(project, connection)
    recorded = recorded_checksums(connection)
    connection.rollback()
    if current is None:
        return HistoryCheck([], [])
    try:
        alembic_ops.heads(project)
    except alembic_ops.BrokenHistory as exc:
        gone = HistoryProblem(
            exc.revision,
            MISSING,
            "its revision file is gone, and the history below it no longer resolves",
        )
        return HistoryCheck([gone], [])
    if not alembic_ops.is_known(project, current):
        unknown = HistoryProblem(
            current,
            UNKNOWN,
            "the database is at this revision, but no "
            "revision file of this code has it (lost, or newer code "
            "migrated the database)",
        )
        return HistoryCheck([unknown], [])
    files = {info.revision: info.path for info in alembic_ops.pending(project, None, current)}
    problems, rewrites = [], []
    for revision, path in files.items():
        if revision not in recorded:
            continue
        if not path.exists():
            problems.append(HistoryProblem(revision, MISSING, f"its file {path.name} is gone"))
            continue
        now, ran = _sha256(path), recorded[revision]
        if now == ran:
            continue
        reason = declared_equivalents(path).get(ran)
        if reason is not None:
            rewrites.append(DeclaredRewrite(revision, ran, now, reason))
        else:
            problems.append(
                HistoryProblem(
                    revision,
                    CHANGED,
                    f"{path.name} changed after it was applied (sha256 now {now[:12]}..., "
                    f"applied as {recorded[revision][:12]}...)",
                    current_sha256=now,
                )
            )
    return HistoryCheck(problems, rewrites)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unrecorded_applied(
    project: Project, connection: Connection, current: str | None
) -> dict[str, str]:
    """Checksums of applied revisions the ledger has no record of yet (plain ``alembic`` ran
    them): recorded by the next successful run, they are what later checks compare with."""
    recorded = recorded_checksums(connection)
    connection.rollback()
    if current is None:
        return {}
    return {
        info.revision: info.sha256
        for info in alembic_ops.pending(project, None, current)
        if info.revision not in recorded
    }


def ledger_checksums(
    project: Project, connection: Connection, checks: PreflightReport, planned: dict[str, str]
) -> dict[str, str]:
    """What a run's ledger row records: applied revisions no row has yet, the changed files the
    policy accepted or the revisions declared equivalent, and the planned revisions."""
    baseline = unrecorded_applied(project, connection, checks.current)
    accepted = {p.revision: p.current_sha256 for p in checks.accepted_history}
    rewritten = {r.revision: r.current_sha256 for r in checks.rewritten_history}
    return {**baseline, **accepted, **rewritten, **planned}
