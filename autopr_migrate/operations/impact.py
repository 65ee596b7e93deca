"""The impact report: what the application felt while the rehearsal's upgrade ran under load,
per statement, against a baseline without the migration, and whether that fits the budget.

Read from a ``LoadMeasurement``: each workload query that waited for a lock behind one of the
migration's statements (the longest wait, how many), the workload's failed queries, latency
p50/p99 and throughput during the upgrade against the baseline period before it. With the lint
report, each statement's observed table locks are compared with the analyzer's prediction
(``operations.lock_check``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from autopr_migrate.analysis.model import LintReport
from autopr_migrate.backends.lock_sampler import Observed
from autopr_migrate.backends.workload import Transaction
from autopr_migrate.errors import PreflightRefused
from autopr_migrate.masking import mask_secrets
from autopr_migrate.operations.load_rehearsal import LoadMeasurement
from autopr_migrate.operations.lock_check import LockMismatch, StatementLocks, compare_locks
from autopr_migrate.operations.rehearse import Rehearsal
from autopr_migrate.policy.parameters import ImpactPolicy


@dataclass(frozen=True)
class Latency:
    transactions: int
    per_second: float
    p50_ms: float | None
    p99_ms: float | None

    def text(self) -> str:
        if self.p50_ms is None:
            return f"{self.transactions} transactions"
        return f"p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, {self.per_second:.0f}/s"


@dataclass(frozen=True)
class StatementImpact:
    statement: str
    seconds: float
    longest_wait: float
    waits: int
    locks: str  # the table locks PostgreSQL granted it, "t: SHARE"
    predicted: str | None
    p99_ms: float | None = None  # of the workload's transactions due or running meanwhile


@dataclass
class ImpactReport:
    """``measured`` is False when no load ran (``why_not``); the budget is then not checked.
    ``missing``: the policy asked for a measurement that could not be taken."""

    measured: bool
    why_not: str | None = None
    missing: bool = False
    workload: str = ""
    rate: float = 0.0
    baseline: Latency | None = None
    during: Latency | None = None
    failed: list[str] = field(default_factory=list)
    longest_wait: float = 0.0
    blocked_seconds: float = 0.0
    statements: list[StatementImpact] = field(default_factory=list)
    mismatches: list[LockMismatch] = field(default_factory=list)
    over_budget: list[str] = field(default_factory=list)

    @property
    def throughput_dip(self) -> float | None:
        """The share of the baseline's throughput lost during the upgrade (0 to 1)."""
        if not self.baseline or not self.during or not self.baseline.per_second:
            return None
        return max(0.0, 1 - self.during.per_second / self.baseline.per_second)

    def lines(self) -> list[str]:
        """The approval text's first lines about the application."""
        if not self.measured:
            if self.missing:
                return [f"**Application impact could not be measured**: {self.why_not}"]
            return [f"Application impact not measured: {self.why_not}"]
        verdict = (
            f"**over budget**: {'; '.join(self.over_budget)}"
            if self.over_budget
            else "within budget"
        )
        dip = self.throughput_dip
        lines = [
            f"**Application impact on the copy** ({verdict}): longest wait behind the migration "
            f"{self.longest_wait * 1000:.0f} ms, {len(self.failed)} failed quer"
            f"{'y' if len(self.failed) == 1 else 'ies'}, latency {self._latency_text()}"
            + (f", throughput -{dip:.0%}" if dip else ""),
        ]
        worst = max(self.statements, key=lambda s: s.longest_wait, default=None)
        if worst is not None and worst.longest_wait > 0:
            lines.append(
                f"the longest wait was behind `{worst.statement[:70]}` "
                f"({worst.waits} quer{'y' if worst.waits == 1 else 'ies'} waited)"
            )
        if self.failed:
            lines.append(f"first failed query: {self.failed[0][:120]}")
        return lines

    def _latency_text(self) -> str:
        if not self.baseline or not self.during or self.during.p99_ms is None:
            return "not enough transactions to compare"
        return (
            f"p99 {self.during.p99_ms:.0f} ms against {self.baseline.p99_ms or 0:.0f} ms "
            f"without the migration"
        )

    def rows(self) -> list[dict]:
        return [
            {
                "statement": s.statement[:80],
                "ran s": round(s.seconds, 2),
                "longest wait ms": round(s.longest_wait * 1000),
                "queries waited": s.waits,
                "p99 ms": s.p99_ms if s.p99_ms is not None else "",
                "locks held": s.locks,
                "predicted": s.predicted or "",
            }
            for s in self.statements
        ] or [{"statement": "no statement of the migration was seen running"}]

    def to_json(self) -> dict:
        return {
            "measured": self.measured,
            "why_not": self.why_not,
            "longest_wait_ms": round(self.longest_wait * 1000),
            "blocked_seconds": round(self.blocked_seconds, 2),
            "failed_queries": len(self.failed),
            "p99_ms": self.during.p99_ms if self.during else None,
            "baseline_p99_ms": self.baseline.p99_ms if self.baseline else None,
            "over_budget": self.over_budget,
        }


def assess(
    measurement: LoadMeasurement | None,
    report: LintReport | None,
    policy: ImpactPolicy,
    *,
    why_not: str | None = None,
    missing: bool = False,
) -> ImpactReport:
    """``missing``: the policy asked for a measurement that could not be taken (the risk then
    says so and is at least medium)."""
    if measurement is None:
        return ImpactReport(False, why_not or "the rehearsal did not run", missing=missing)
    began, ended = measurement.window
    log = measurement.log
    early = [message for when, message in log.errors if when < began]
    if early:
        return ImpactReport(
            False,
            f"the workload failed before the migration started: {early[0][:120]}",
            missing=True,
        )
    observed = measurement.observed.between(began, ended).behind_migration()
    impact = ImpactReport(
        True,
        workload=measurement.workload,
        rate=measurement.rate,
        baseline=_latency(log.transactions, *measurement.baseline),
        during=_latency(log.transactions, began, max(ended, began + 1.0)),
        failed=[
            mask_secrets(message)
            for when, message in log.errors
            if began <= when <= ended + measurement.settle
        ],
        longest_wait=observed.longest_wait,
        blocked_seconds=observed.blocked_seconds,
    )
    locks = compare_locks(list(observed.statements.values()), report)
    impact.statements = [
        seen
        for found, seen in (
            (found, _statement(found, observed, log.transactions)) for found in locks
        )
        if found.in_plan or found.mismatches or seen.waits
    ]
    impact.mismatches = [mismatch for found in locks for mismatch in found.mismatches]
    impact.over_budget = over_budget(impact, policy)
    return impact


def impact_of(
    rehearsal: Rehearsal, report: LintReport | None, policy: ImpactPolicy
) -> ImpactReport:
    """The impact report of a rehearsal (measured under load, or why not)."""
    return assess(
        rehearsal.load,
        report,
        policy,
        why_not=rehearsal.load_skipped,
        missing=rehearsal.load_missing,
    )


def gate_impact(impact: ImpactReport, policy: ImpactPolicy) -> None:
    """With ``over_budget = refuse``, a plan over the budget on the copy goes no further."""
    if impact.over_budget and policy.over_budget == "refuse":
        raise PreflightRefused(
            f"on the rehearsal's copy the application's impact is over the budget "
            f"({'; '.join(impact.over_budget)}): rewrite the migration as the lint suggests, "
            f"raise the budget in policy.impact, or set policy.impact.over_budget=person"
        )


def over_budget(impact: ImpactReport, policy: ImpactPolicy) -> list[str]:
    reasons = []
    if impact.longest_wait * 1000 > policy.max_wait_ms:
        reasons.append(
            f"a query waited {impact.longest_wait * 1000:.0f} ms (budget {policy.max_wait_ms:g} ms)"
        )
    if len(impact.failed) > policy.max_failed_queries:
        reasons.append(
            f"{len(impact.failed)} failed quer{'y' if len(impact.failed) == 1 else 'ies'} "
            f"(budget {policy.max_failed_queries})"
        )
    baseline, during = impact.baseline, impact.during
    if (
        policy.max_p99_ratio is not None
        and baseline
        and during
        and baseline.p99_ms
        and during.p99_ms is not None
        and during.p99_ms > baseline.p99_ms * policy.max_p99_ratio
    ):
        reasons.append(
            f"p99 {during.p99_ms:.0f} ms is {during.p99_ms / baseline.p99_ms:.1f}x the "
            f"baseline's (budget {policy.max_p99_ratio:g}x)"
        )
    return reasons


def _statement(
    found: StatementLocks, observed: Observed, transactions: list[Transaction]
) -> StatementImpact:
    statement = found.statement
    key = (statement.pid, statement.started)
    waits = [wait for wait in observed.waits.values() if wait.behind == key]
    return StatementImpact(
        mask_secrets(" ".join(statement.query.split())),
        statement.last_seen - statement.first_seen,
        max((wait.seconds for wait in waits), default=0.0),
        len(waits),
        ", ".join(f"{table}: {mode}" for table, mode in sorted(found.strongest.items())),
        found.predicted,
        _latency(transactions, statement.first_seen, statement.last_seen).p99_ms,
    )


def _latency(transactions: list[Transaction], began: float, ended: float) -> Latency:
    """Latency of the transactions due in the window or still running in it; throughput from
    those that ended in it."""
    inside = [
        t for t in transactions if t.started <= ended and t.started + t.latency_ms / 1000 >= began
    ]
    done = sorted(t.latency_ms for t in inside if not t.failed)
    ended_inside = sum(1 for t in inside if began <= t.started + t.latency_ms / 1000 <= ended)
    per_second = ended_inside / max(ended - began, 1e-3)
    if len(done) < 5:
        return Latency(len(inside), per_second, None, None)
    return Latency(
        len(inside),
        per_second,
        done[len(done) // 2],
        done[min(len(done) - 1, int(len(done) * 0.99))],
    )
