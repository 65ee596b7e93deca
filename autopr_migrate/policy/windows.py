"""Migration windows: when one is open, when the next opens, and whether an upgrade fits.

Window starts come from cron in the window's own time zone (cronsim resolves the hours that
daylight saving skips or repeats); lengths are real elapsed time, so a window that spans a
clock change is as long as it says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

from autopr_migrate.policy.parameters import MigrationWindow

LOOKAHEAD = 10_000  # window openings examined at most, per window


@dataclass(frozen=True)
class Opening:
    window: MigrationWindow
    start: datetime
    end: datetime

    def describe(self) -> str:
        zone = ZoneInfo(self.window.timezone)
        local = self.start.astimezone(zone)
        name = f"{self.window.name} " if self.window.name else ""
        return (
            f"{name}{local:%a %Y-%m-%d %H:%M %Z} for {self.window.duration_minutes} min "
            f"({self.start.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
        )


def openings(window: MigrationWindow, after: datetime) -> list[Opening]:
    """The window's openings that end after ``after``, soonest first (a bounded list)."""
    zone = ZoneInfo(window.timezone)
    length = timedelta(minutes=window.duration_minutes)
    found: list[Opening] = []
    # Start one window length back, so a window that is open right now is found too.
    for count, start in enumerate(CronSim(window.cron, (after - length).astimezone(zone))):
        if count >= LOOKAHEAD or len(found) >= 3:
            break
        begins = start.astimezone(UTC)
        if begins + length > after:
            found.append(Opening(window, begins, begins + length))
    return found


@dataclass(frozen=True)
class Fit:
    """Where an upgrade needing ``needed`` can start: now, later, or nowhere soon."""

    start_now: bool
    opening: Opening | None
    reason: str


def fit(windows: list[MigrationWindow], now: datetime, needed: timedelta) -> Fit:
    """The soonest opening (the current one included) with ``needed`` time left in it."""
    candidates = []
    for window in windows:
        for opening in openings(window, now):
            begins = max(opening.start, now)
            if begins + needed <= opening.end:
                candidates.append((begins, opening))
                break
    if not candidates:
        longest = max(w.duration_minutes for w in windows)
        minutes = needed.total_seconds() / 60
        reason = (
            f"no window is long enough: the upgrade needs about {minutes:.0f} min, the "
            f"longest window is {longest} min"
        )
        return Fit(False, None, reason)
    begins, opening = min(candidates, key=lambda pair: pair[0])
    if begins <= now:
        return Fit(True, opening, f"inside the window {opening.describe()}")
    return Fit(False, opening, f"the next window that fits opens {opening.describe()}")
