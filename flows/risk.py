"""A plan's risk as the approval text and the policy see it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Risk:
    """The level (low, medium, high, critical, or unknown) and the lines that explain it."""

    level: str = "unknown"
    summary: list[str] = field(default_factory=lambda: ["no risk analysis ran for this plan"])
    rehearsal: str | None = None
