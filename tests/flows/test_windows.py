"""Migration windows: the arithmetic (with daylight saving) and the flow, on an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autopr_migrate import clock
from autopr_migrate.policy.parameters import MigrationWindow, WindowPolicy
from autopr_migrate.policy.windows import fit, openings
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums, schema
from tests.support.alembic_run import revision_of
from tests.support.paused import migrate_approving
from tests.support.revisions import ADD_PRIORITY, add_revision

NOON = MigrationWindow(cron="0 12 * * *", timezone="UTC", duration_minutes=60, name="noon")


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_inside_a_window_with_room_starts_now() -> None:
    found = fit([NOON], _utc(2026, 6, 10, 12, 10), timedelta(minutes=10))
    assert found.start_now and found.opening.start == _utc(2026, 6, 10, 12)


def test_outside_waits_for_the_next_opening() -> None:
    found = fit([NOON], _utc(2026, 6, 10, 9), timedelta(minutes=10))
    assert not found.start_now and found.opening.start == _utc(2026, 6, 10, 12)


def test_too_little_time_left_waits_for_the_next_day() -> None:
    found = fit([NOON], _utc(2026, 6, 10, 12, 55), timedelta(minutes=10))
    assert found.opening.start == _utc(2026, 6, 11, 12)


def test_the_soonest_of_several_windows_wins() -> None:
    night = MigrationWindow(cron="0 2 * * *", timezone="UTC", duration_minutes=120)
    found = fit([NOON, night], _utc(2026, 6, 10, 13, 30), timedelta(minutes=30))
    assert found.opening.start == _utc(2026, 6, 11, 2)


def test_no_window_is_long_enough() -> None:
    found = fit([NOON], _utc(2026, 6, 10, 9), timedelta(hours=2))
    assert found.opening is None and "longest window is 60 min" in found.reason


def test_daylight_saving_in_the_windows_zone() -> None:
    berlin = MigrationWindow(cron="30 2 * * *", timezone="Europe/Berlin", duration_minutes=60)
    # Spring forward: 02:30 does not exist on 29 March 2026; the window opens at 03:00 CEST.
    spring = openings(berlin, _utc(2026, 3, 28, 23))[0]
    assert spring.start == _utc(2026, 3, 29, 1) and spring.end - spring.start == timedelta(hours=1)
    # Fall back: 02:30 happens twice on 25 October 2026; the window opens at the first one.
    autumn = openings(berlin, _utc(2026, 10, 24, 23))[0]
    assert autumn.start == _utc(2026, 10, 25, 0, 30)
    # Either side of the change, the window is at 02:30 local time.
    assert openings(berlin, _utc(2026, 10, 26, 0))[0].start == _utc(2026, 10, 26, 1, 30)
    assert openings(berlin, _utc(2026, 10, 24, 0))[0].start == _utc(2026, 10, 24, 0, 30)


def test_a_window_must_name_a_real_cron_and_zone() -> None:
    with pytest.raises(ValueError, match="not a cron"):
        MigrationWindow(cron="every day", duration_minutes=10)
    with pytest.raises(ValueError, match="unknown time zone"):
        MigrationWindow(cron="0 2 * * *", timezone="Mars/Olympus", duration_minutes=10)


class FakeClock:
    """Stands still until a step sleeps; then the time jumps ahead."""

    def __init__(self, start: datetime) -> None:
        self.current = start
        self.slept = timedelta()

    def now(self) -> datetime:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        self.slept += timedelta(seconds=seconds)


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch):
    def install(start: datetime) -> FakeClock:
        fake = FakeClock(start)
        monkeypatch.setattr(clock, "now", fake.now)
        monkeypatch.setattr(clock, "sleep", fake.sleep)
        return fake

    return install


@pytest.fixture
def ready(migration_target, history):
    engine = at_head_with_rows(migration_target.engine())
    goal = add_revision(history, "aaaa000000a0", ADD_PRIORITY)
    return engine, goal


def _run(windows: list[MigrationWindow], **limits: float) -> object:
    policy = fast_policy().model_copy(update={"window": WindowPolicy(windows=windows, **limits)})
    return migrate_approving(target="app", policy=policy)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_approved_inside_the_window_applies_at_once(ready, fake_clock) -> None:
    engine, goal = ready
    fake = fake_clock(_utc(2026, 6, 10, 12, 5))
    state = _run([NOON])
    assert state.is_completed(), state.message
    assert revision_of(engine) == goal and fake.slept == timedelta()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_approved_outside_waits_and_applies_when_the_window_opens(ready, fake_clock) -> None:
    engine, goal = ready
    fake = fake_clock(_utc(2026, 6, 10, 9, 30))
    state = _run([NOON])
    assert state.is_completed(), state.message
    assert revision_of(engine) == goal
    assert fake.current == _utc(2026, 6, 10, 12)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_upgrade_that_would_overrun_waits_for_the_next_window(ready, fake_clock) -> None:
    engine, goal = ready
    fake = fake_clock(_utc(2026, 6, 10, 12, 57))  # three minutes left; it needs five
    state = _run([NOON])
    assert state.is_completed(), state.message
    assert fake.current == _utc(2026, 6, 11, 12) and revision_of(engine) == goal


def test_no_window_within_the_limit_fails_with_nothing_changed(ready, fake_clock) -> None:
    engine, _goal = ready
    before = (revision_of(engine), checksums(engine), schema(engine))
    fake_clock(_utc(2026, 6, 10, 13))
    weekly = MigrationWindow(cron="0 12 * * SAT", timezone="UTC", duration_minutes=60)
    state = _run([weekly], wait_limit_hours=24)
    assert state.is_failed()
    assert "no migration window fits the upgrade" in state.message
    assert "nothing was changed" in state.message
    assert (revision_of(engine), checksums(engine), schema(engine)) == before


def test_production_targets_need_a_window(ready, monkeypatch) -> None:
    monkeypatch.setenv("AUTOPR_DB_APP_PRODUCTION", "true")
    from autopr_migrate.flows.migrate import migrate

    state = migrate(
        target="app",
        requested_by="ops",
        return_state=True,
        policy=fast_policy(approval={"mode": "always"}),
    )
    assert state.is_failed() and "no migration window" in state.message
    assert "nothing was changed" in state.message
