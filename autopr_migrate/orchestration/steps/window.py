"""Wait for the migration window: the upgrade starts only inside one, with room to finish.

Planning and approval happen at any time. An approved run outside its windows waits, saying
when the next one that fits opens (a log line and the progress artifact
``migration-window-<target>``); it fails with nothing changed when none fits within the
policy's limit.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from autopr_migrate import clock
from autopr_migrate.errors import OutsideMigrationWindow
from autopr_migrate.policy.parameters import WindowPolicy
from autopr_migrate.policy.windows import Fit, fit
from autopr_migrate.targets.targets import Target

CHECK_EVERY_SECONDS = 60


@task(name="wait-for-window", cache_policy=NO_CACHE)
def wait_for_window(target: Target, policy: WindowPolicy, needed: timedelta) -> str:
    """Return once the upgrade may start; raise ``OutsideMigrationWindow`` after the limit."""
    if not policy.windows:
        return "no window configured: any time"
    logger = get_run_logger()
    began = clock.now()
    give_up = began + timedelta(hours=policy.wait_limit_hours)
    progress = None
    shown: tuple[float, str] = (0.0, "")
    while True:
        now = clock.now()
        found: Fit = fit(policy.windows, now, needed)
        if found.start_now:
            logger.info("%s: the upgrade starts now", found.reason)
            if progress is not None:
                update_progress_artifact(progress, 100.0, description=found.reason)
            return found.reason
        if found.opening is None or found.opening.start > give_up:
            limit = f", after the wait limit of {policy.wait_limit_hours:g} h"
            why = found.reason + ("" if found.opening is None else limit)
            raise OutsideMigrationWindow(f"no migration window fits the upgrade: {why}")
        total = (found.opening.start - began).total_seconds() or 1
        waited = (now - began).total_seconds()
        message = (
            f"approved, outside the migration window: waiting until {found.reason} "
            f"(the upgrade needs about {needed.total_seconds() / 60:.0f} min)"
        )
        percent = min(99.0, float(int(100 * waited / total)))
        if progress is None:
            logger.info("%s", message)
            progress = create_progress_artifact(
                percent, key=f"migration-window-{target.name}", description=message
            )
            shown = (percent, message)
        elif shown != (percent, message):  # a day's wait is 1440 checks, but 100 updates
            update_progress_artifact(progress, percent, description=message)
            shown = (percent, message)
        clock.sleep(min(CHECK_EVERY_SECONDS, (found.opening.start - now).total_seconds()))
