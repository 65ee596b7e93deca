"""What lint knows about a statement, what it finds, and how findings roll up into a level."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from autopr_migrate.model import RISK_LEVELS

LEVELS = RISK_LEVELS
DOCS = "docs/zero-downtime.md"
_SAFE_STEP = re.compile(r"^\s*-- (safe\.\w+) \(([\w ]+)\)\s*$", re.MULTILINE)
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def worst(levels: list[str]) -> str:
    return max(levels, key=LEVELS.index, default="low")


def safe_step_comment(operation: str, step: str) -> str:
    """The line a safe operation's rendering puts above each sub-step's statement."""
    return f"-- safe.{operation} ({step})"


def safe_step_of(text: str) -> tuple[str, str] | None:
    """``(operation, step)`` of the line nearest the statement in the text above it."""
    found = _SAFE_STEP.findall(_BLOCK_COMMENT.sub("", text))
    return found[-1] if found else None


@dataclass(frozen=True)
class TableStats:
    """A table's size as the database estimates it; ``rows`` is None when never analyzed."""

    rows: int | None
    bytes: int

    @property
    def tier(self) -> str:
        """empty, small, medium or large: what the severity of a finding scales with."""
        rows = self.rows if self.rows is not None else self.bytes // 100
        if rows >= 1_000_000 or self.bytes >= 256 * 2**20:
            return "large"
        if rows >= 10_000 or self.bytes >= 8 * 2**20:
            return "medium"
        return "empty" if rows == 0 and self.bytes <= 64 * 1024 else "small"

    def describe(self) -> str:
        rows = f"~{self.rows:,} rows" if self.rows is not None else "rows unknown"
        return f"{rows}, {self.bytes / 2**20:.1f} MiB"


@dataclass
class Statement:
    """One statement and what running it does to the tables it touches."""

    number: int
    line: int
    sql: str
    kind: str
    tables: list[str] = field(default_factory=list)
    lock: str | None = None
    rewrites: bool = False
    scans: bool = False
    validates: bool = False
    destroys_data: bool = False
    non_transactional: bool = False
    lock_timeout: bool = False
    in_transaction: bool = False
    safe_operation: str | None = None  # the safe operation whose sub-step it is (rendered)
    safe_step: str | None = None

    @property
    def summary(self) -> str:
        text = " ".join(self.sql.split())
        return text if len(text) <= 70 else text[:67] + "..."


@dataclass
class Finding:
    statement: int
    rule: str
    level: str
    message: str
    suggestion: str
    source: str = "autopr"
    also: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class LintReport:
    statements: list[Statement]
    findings: list[Finding]
    sizes: dict[str, TableStats]
    sizes_known: bool
    notes: list[str] = field(default_factory=list)
    # revisions of the plan whose SQL was not in what was linted (not PostgreSQL SQL)
    unread_revisions: list[str] = field(default_factory=list)

    @property
    def level(self) -> str:
        return worst([finding.level for finding in self.findings])

    @property
    def tables(self) -> list[str]:
        """The tables the statements touch, in the order they first appear."""
        return list(dict.fromkeys(t for statement in self.statements for t in statement.tables))

    def worst_findings(self, count: int = 3) -> list[Finding]:
        ranked = sorted(self.findings, key=lambda f: LEVELS.index(f.level), reverse=True)
        return ranked[:count]

    def to_json(self) -> dict:
        return {
            "level": self.level,
            "findings": [finding.to_json() for finding in self.findings],
            "statements": [asdict(statement) for statement in self.statements],
            "tables": {name: asdict(stats) for name, stats in self.sizes.items()},
            "notes": self.notes,
        }
