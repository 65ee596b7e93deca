"""squawk (the squawk-cli package) on the same SQL, its findings mapped onto ours.

Where squawk and our analyzer report the same problem for a statement, the row is ours and
names squawk's rule too; squawk's other rules become rows of their own, at a level from the
table below. Rules that the migrate flow makes moot are left out: it sets ``lock_timeout`` and
``statement_timeout`` itself, and Alembic revisions run once, in order.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_VALIDATION = ("scan-under-access-exclusive", "foreign-key-validation", "unique-constraint-build")
SAME_AS_OURS: dict[str, tuple[str, ...]] = {
    "require-concurrent-index-creation": ("blocking-index",),
    "require-concurrent-index-deletion": ("blocking-index-drop",),
    "changing-column-type": ("table-rewrite",),
    "adding-required-field": ("required-column-without-default",),
    "adding-not-nullable-field": ("scan-under-access-exclusive",),
    "constraint-missing-not-valid": _VALIDATION,
    "adding-foreign-key-constraint": ("foreign-key-validation",),
    "disallowed-unique-constraint": ("unique-constraint-build",),
    "adding-primary-key-constraint": ("unique-constraint-build",),
    "ban-drop-column": ("data-loss",),
    "ban-drop-table": ("data-loss",),
    "ban-truncate-cascade": ("data-loss",),
    "renaming-column": ("breaking-rename",),
    "renaming-table": ("breaking-rename",),
    "adding-field-with-default": ("table-rewrite",),
    "ban-concurrent-index-creation-in-transaction": ("concurrently-in-transaction",),
    "require-lock-timeout": ("missing-lock-timeout",),
    "ban-drop-database": ("drop-database",),
}
MOOT_UNDER_THE_FLOW = {
    "require-lock-timeout",
    "require-statement-timeout",
    "require-timeout-settings",
}
# Schema-design advice, not migration risk; and rules about re-running a script, which Alembic
# revisions never are.
ALWAYS_MOOT = {
    "prefer-robust-stmts",
    "transaction-nesting",
    "prefer-text-field",
    "prefer-bigint-over-int",
    "prefer-bigint-over-smallint",
    "prefer-big-int",
    "prefer-identity",
    "prefer-timestamptz",
}
OWN_LEVELS = {"ban-char-field": "low"}


@dataclass(frozen=True)
class SquawkViolation:
    line: int
    rule: str
    message: str
    help: str


def squawk_binary() -> str:
    beside = Path(sys.executable).with_name("squawk")
    found = str(beside) if beside.exists() else shutil.which("squawk")
    if not found:
        raise FileNotFoundError("squawk was not found: install the squawk-cli package")
    return found


def run_squawk(sql: str, *, flow_sets_timeouts: bool) -> list[SquawkViolation]:
    """squawk's violations for ``sql`` (0-based lines), without the ones that do not apply."""
    result = subprocess.run(
        [squawk_binary(), "--reporter", "json", "--pg-version", "15"],
        input=sql,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        raw = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        raise RuntimeError(f"squawk failed: {result.stderr.strip()[:300]}") from None
    skip = ALWAYS_MOOT | (MOOT_UNDER_THE_FLOW if flow_sets_timeouts else set())
    return [
        SquawkViolation(
            item["line"], item["rule_name"], item.get("message", ""), item.get("help") or ""
        )
        for item in raw
        if item.get("rule_name") not in skip
    ]
