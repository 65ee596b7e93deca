"""Shared nouns: what a run's status, operation and risk can be, and the tool's own tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# The tables the tool keeps in the database it migrates; autogenerate must never touch them.
LEDGER_TABLE = "autopr_migration_ledger"
BACKFILL_CHECKPOINT_TABLE = "autopr_backfill_checkpoint"  # only while a backfill is unfinished
TOOL_OWNED_TABLES = frozenset({LEDGER_TABLE, BACKFILL_CHECKPOINT_TABLE})


class Status(StrEnum):
    """How a run ended (or that it has not): a ledger row's ``status``."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    RESTORED = "restored"
    FAILED = "failed"


class Operation(StrEnum):
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    RESTORE = "restore"


class RiskLevel(StrEnum):
    """How dangerous a plan is, lowest first (a plan nobody could analyze is "unknown")."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


RISK_LEVELS: tuple[str, ...] = tuple(RiskLevel)


@dataclass(frozen=True)
class Risk:
    """The level (low, medium, high, critical, or unknown) and the lines that explain it."""

    level: str = "unknown"
    summary: list[str] = field(default_factory=lambda: ["no risk analysis ran for this plan"])
    rehearsal: str | None = None
    application: tuple[str, ...] = ()  # the impact report's lines: what the application felt
