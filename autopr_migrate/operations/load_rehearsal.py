"""The rehearsal's upgrade under an application's load, sampled for locks and waits.

A workload (``operations.workloads``) runs against the scratch copy at a fixed rate from before
the rehearsal starts (the baseline) until it ends, while the lock sampler reads every 50 ms
what the migration's statements hold and which of the workload's queries wait behind them.
What the rehearsal's upgrade did to the workload is read afterwards, from its time window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from autopr_migrate.backends.connections import connect
from autopr_migrate.backends.lock_sampler import LockSampler, Observed
from autopr_migrate.backends.workload import LoadLog, Workload, pgbench_available
from autopr_migrate.model import LEDGER_TABLE
from autopr_migrate.operations.workloads import choose_workload
from autopr_migrate.policy.parameters import ImpactPolicy
from autopr_migrate.targets.targets import Target

LOG = logging.getLogger(__name__)
SAMPLE_SECONDS = 0.05


@dataclass
class LoadMeasurement:
    """What the workload and the sampler saw; ``window`` is the rehearsal's upgrade (epoch s)."""

    workload: str
    rate: float
    clients: int
    log: LoadLog
    observed: Observed
    window: tuple[float, float]
    settle: float = 0.0

    @property
    def baseline(self) -> tuple[float, float]:
        return (self.log.began + 0.3, self.window[0])


@dataclass
class Measuring:
    """Filled in while the rehearsal runs: its upgrade's window, then the measurement."""

    window: tuple[float, float] | None = None
    settle: float = 0.0  # seconds the upgraded copy stayed under the load after the window
    measurement: LoadMeasurement | None = None
    skipped: str | None = None
    missing: bool = False  # the policy asked for a measurement that could not be taken
    loaded: bool = False  # the workload runs


@contextmanager
def under_load(
    target: Target,
    scratch: Target,
    policy: ImpactPolicy,
    tables: list[str],
    directory: Path,
    *,
    log: logging.Logger | logging.LoggerAdapter = LOG,
) -> Iterator[Measuring]:
    """Run the block under the workload; afterwards ``measuring.measurement`` holds what was
    seen, or ``measuring.skipped`` says why nothing was measured."""
    measuring = Measuring()
    why_not = _why_not(scratch, policy)
    measuring.missing = (
        why_not is not None and policy.rehearse_under_load and (scratch.dialect == "postgresql")
    )
    if why_not is None:
        ours = {scratch.project.version_table, LEDGER_TABLE}
        tables = [table for table in tables if table.split(".")[-1].strip('"') not in ours]
        with connect(target) as live, connect(scratch) as copy:
            chosen = choose_workload(live, copy, tables, policy.workload_file)
        why_not = chosen if isinstance(chosen, str) else None
    if why_not is not None:
        measuring.skipped = why_not
        yield measuring
        return
    assert not isinstance(chosen, str)
    load_dir = directory / "load"
    load_dir.mkdir()
    with Workload(
        scratch.url, chosen.scripts, rate=policy.rate, clients=policy.clients, directory=load_dir
    ) as load:
        if load.log.problem:
            measuring.skipped, measuring.missing = load.log.problem, True
            yield measuring
            return
        measuring.loaded = True
        log.info(
            "workload on the copy: %s, %g transactions/s from %d clients; baseline %g s",
            chosen.description,
            policy.rate,
            policy.clients,
            policy.baseline_seconds,
        )
        time.sleep(policy.baseline_seconds)
        with LockSampler(scratch.url, interval=SAMPLE_SECONDS) as observed:
            yield measuring
        done = load.stop()
    if measuring.window is None:
        measuring.skipped = "the rehearsal's upgrade did not run"
        return
    if observed.problem:
        measuring.skipped, measuring.missing = observed.problem, True
        return
    measuring.measurement = LoadMeasurement(
        chosen.description,
        policy.rate,
        policy.clients,
        done,
        observed,
        measuring.window,
        measuring.settle,
    )


def _why_not(scratch: Target, policy: ImpactPolicy) -> str | None:
    if not policy.rehearse_under_load:
        return "switched off by policy.impact.rehearse_under_load"
    if scratch.dialect != "postgresql":
        return "the target is not PostgreSQL"
    return pgbench_available()
