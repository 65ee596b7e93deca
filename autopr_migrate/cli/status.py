"""``autopr-migrate status``: where a target is, and what an upgrade would run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from autopr_migrate.backends.connections import connect
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.targets.targets import Target


@dataclass(frozen=True)
class TargetStatus:
    target: str
    url: str
    current: str | None
    heads: list[str]
    pending: list[dict[str, str]] | None = field(default=None)  # None: current is unknown

    @property
    def known(self) -> bool:
        return self.pending is not None

    def lines(self) -> list[str]:
        head = [
            f"target:   {self.target} ({self.url})",
            f"current:  {self.current or 'base (empty)'}",
            f"head:     {', '.join(self.heads)}",
        ]
        if self.pending is None:
            return [*head, f"pending:  unknown: {self.current} is not in this code's history"]
        return [
            *head,
            f"pending:  {len(self.pending)}",
            *(f"  {p['revision']}  {p['message']}" for p in self.pending),
        ]

    def to_json(self) -> dict:
        return asdict(self)


def status_of(target: Target) -> TargetStatus:
    """The database's revision, the code's head, and the revisions an upgrade would run."""
    with connect(target) as connection:
        current = alembic_ops.current(target.project, connection)
    heads = alembic_ops.heads(target.project)
    todo = alembic_ops.pending_if_known(target.project, current)
    if todo is None:
        return TargetStatus(target.name, target.masked_url, current, heads)
    pending = [{"revision": info.revision, "message": info.message} for info in todo]
    return TargetStatus(target.name, target.masked_url, current, heads, pending)
