"""The fleet's census: where each target is, read-only, before anything changes.

Each member's revision, schema fingerprint, size, health and unfinished runs. Members are
grouped by (revision, fingerprint); at each revision the fingerprint most members share is the
reference, and a member whose schema differs from it is drifted. Members that are unreachable,
at a revision the history does not know, drifted, or with an unfinished run are left out (or
refuse the whole fleet, as the policy says), with the reason.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from sqlalchemy.exc import DBAPIError

from autopr_migrate.backends.connections import connect
from autopr_migrate.backends.fingerprint import fingerprint
from autopr_migrate.backends.registry import backend_for
from autopr_migrate.errors import DatabaseUnreachable, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.operations.history_integrity import check_applied
from autopr_migrate.operations.probe import check_health
from autopr_migrate.store import ledger
from autopr_migrate.targets.targets import Target


@dataclass(frozen=True)
class Member:
    """One target as the census found it; ``excluded`` says why it is left out ("" if not)."""

    target: str
    revision: str | None = None
    schema: str = ""  # a digest of the schema fingerprint
    bytes: int = 0
    healthy: bool = False
    health: str = ""
    unfinished: str = ""
    excluded: str = ""

    @property
    def group(self) -> str:
        return f"{self.revision or 'base'}@{self.schema[:8]}"


@dataclass(frozen=True)
class Census:
    members: tuple[Member, ...]

    @property
    def included(self) -> list[Member]:
        return [m for m in self.members if not m.excluded]

    @property
    def excluded(self) -> list[Member]:
        return [m for m in self.members if m.excluded]

    def by_revision(self) -> dict[str | None, list[Member]]:
        """Included members by starting revision, each group largest database first."""
        groups: dict[str | None, list[Member]] = {}
        for member in sorted(self.included, key=lambda m: -m.bytes):
            groups.setdefault(member.revision, []).append(member)
        return groups

    def rows(self) -> list[dict]:
        return [
            {
                "target": m.target,
                "revision": m.revision or "base",
                "schema": m.schema[:12],
                "size": m.bytes,
                "health": "ok" if m.healthy else m.health,
                "unfinished run": m.unfinished,
                "left out": m.excluded,
            }
            for m in self.members
        ]


def take_census(
    targets: Iterable[Target],
    *,
    parallel: int = 8,
    on_read: Callable[[int, int], None] = lambda done, total: None,
) -> Census:
    """Read every target (``parallel`` at a time) and decide who is left out."""
    targets = list(targets)
    done = itertools.count(1)  # one step at a time whichever thread takes it

    def read(target: Target) -> Member:
        member = _read(target)
        on_read(next(done), len(targets))
        return member

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(targets)))) as pool:
        members = list(pool.map(read, targets))
    return Census(tuple(_with_drift(members)))


def _read(target: Target) -> Member:
    try:
        return _read_member(target)
    except Exception as exc:  # whatever one member does, the census goes on and says so
        return Member(target.name, excluded=f"could not be read: {describe(exc)[:160]}")


def _read_member(target: Target) -> Member:
    try:
        with connect(target, connect_timeout=10) as connection:
            revision = alembic_ops.current(target.project, connection)
            schema = _digest(fingerprint(connection, version_table=target.project.version_table))
            size = backend_for(target).size(connection, target)
            rows = ledger.unfinished(connection) if ledger.exists(connection) else []
            changed = check_applied(target.project, connection)
            connection.rollback()
    except (DatabaseUnreachable, DBAPIError, OSError) as exc:  # a census result, not a failure
        return Member(target.name, excluded=f"unreachable: {describe(exc)[:160]}")
    unfinished = (
        f"ledger row {rows[-1].id} ({rows[-1].from_revision or 'base'} -> "
        f"{rows[-1].to_revision}) never finished"
        if rows
        else ""
    )
    health = check_health(target.health_url, timeout=5)
    member = Member(
        target.name,
        revision,
        schema,
        size,
        health.healthy,
        "ok" if health.healthy else health.reason,
        unfinished,
    )
    if revision is not None and alembic_ops.pending_if_known(target.project, revision) is None:
        return _left_out(member, f"at revision {revision}, which the history does not know")
    if unfinished:
        return _left_out(member, f"an unfinished run: {unfinished}; resolve it first")
    if changed:
        listed = "; ".join(problem.line() for problem in changed)[:200]
        return _left_out(member, f"revision files it already ran changed since: {listed}")
    if not health.healthy and revision is not None:
        return _left_out(member, f"the application is not healthy: {health.reason}")
    return member


def _with_drift(members: list[Member]) -> list[Member]:
    """At each revision, members whose schema differs from the one most of them share; when no
    schema is shared by more members than any other (a tie), none can be trusted."""
    counts = Counter((m.revision, m.schema) for m in members if not m.excluded)
    by_revision: dict[str | None, list[tuple[int, str]]] = {}
    for (revision, schema), count in counts.items():
        by_revision.setdefault(revision, []).append((count, schema))
    out = []
    for member in members:
        shares = sorted(by_revision.get(member.revision, []), reverse=True)
        if member.excluded or len(shares) < 2:
            out.append(member)
            continue
        (most, reference), (second, _) = shares[0], shares[1]
        at = member.revision or "base"
        if most == second:
            out.append(
                _left_out(
                    member,
                    f"drifted: the targets at revision {at} have {len(shares)} different "
                    f"schemas, none shared by most; compare them (autopr-migrate check) and repair",
                )
            )
        elif member.schema != reference:
            out.append(
                _left_out(
                    member,
                    f"drifted: its schema differs from the {most} other target(s) at revision "
                    f"{at}; compare them (autopr-migrate check) and repair",
                )
            )
        else:
            out.append(member)
    return out


def _left_out(member: Member, reason: str) -> Member:
    return replace(member, excluded=reason)


def _digest(schema: dict) -> str:
    return hashlib.sha256(json.dumps(schema, sort_keys=True, default=str).encode()).hexdigest()
