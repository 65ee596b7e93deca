"""A run's timeline: each step's start, length and outcome, for the report and the ledger."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass
class Step:
    name: str
    started: datetime
    seconds: float = 0.0
    outcome: str = "ok"


@dataclass
class Timeline:
    steps: list[Step] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        entry = Step(name, datetime.now(UTC))
        self.steps.append(entry)
        clock = time.monotonic()
        try:
            yield
        except Exception as exc:
            entry.outcome = f"failed: {type(exc).__name__}"
            raise
        finally:
            entry.seconds = time.monotonic() - clock

    def as_dict(self) -> dict[str, float]:
        return {step.name: round(step.seconds, 3) for step in self.steps}
