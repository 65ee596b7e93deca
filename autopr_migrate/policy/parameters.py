"""Operator policy as Pydantic models: flow parameters with safe defaults and bounds.

The Prefect UI renders these as forms; per-environment values live in ``prefect.yaml``.
Secrets never appear here: parameters are visible to everyone who can see the run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from autopr_migrate.model import RISK_LEVELS, RiskLevel
from autopr_migrate.policy import inputs


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("holds a NUL character; pass plain text")
    return value


OverrideReason = Annotated[str, Field(max_length=inputs.OVERRIDE_REASON), AfterValidator(_no_nul)]
PersonName = Annotated[str, Field(max_length=inputs.PERSON), AfterValidator(_no_nul)]


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LockPolicy(_Policy):
    """How long to wait for locks: the run's migration lock and PostgreSQL table locks."""

    wait_seconds: float = Field(
        600, ge=0, le=86400, description="How long a second run waits for the migration lock."
    )
    lock_timeout_seconds: float = Field(
        5, gt=0, le=600, description="PostgreSQL lock_timeout for each migration statement."
    )
    statement_timeout_seconds: float = Field(
        1800, gt=0, le=86400, description="PostgreSQL statement_timeout for each statement."
    )
    lock_retries: int = Field(
        3, ge=0, le=20, description="Retries of the upgrade after a lock timeout."
    )
    retry_backoff_seconds: float = Field(
        2, ge=0, le=600, description="First delay between lock-timeout retries; doubles."
    )
    queue_behind_seconds: float = Field(
        1,
        ge=0,
        le=3600,
        description="Before a statement whose lock blocks writes, a transaction holding a lock "
        "on its table and open longer than this is waited out (up to lock_timeout, then "
        "retried as a lock timeout) instead of queued behind; 0 switches this off.",
    )


class PreflightPolicy(_Policy):
    """What must be true before anything is touched."""

    connect_timeout_seconds: float = Field(10, gt=0, le=300)
    long_transaction_seconds: float = Field(
        60, gt=0, description="Transactions open longer than this are reported in the plan."
    )
    max_transaction_seconds: float = Field(
        300, gt=0, description="Refuse while any transaction has been open longer than this."
    )
    free_space_factor: float = Field(
        1.2, ge=1, le=10, description="Free space needed in the backup directory, x database size."
    )


class BackupPolicy(_Policy):
    """How the backup that guards the upgrade is taken."""

    format: Literal["auto", "custom", "directory"] = Field(
        "auto",
        description="pg_dump format; auto picks the directory format (parallel dump and "
        "restore) above directory_format_above_bytes, else custom (restored atomically).",
    )
    compression: int = Field(
        1, ge=0, le=9, description="pg_dump gzip level: 1 is far faster than the default 6."
    )
    jobs: int = Field(0, ge=0, le=64, description="Parallel jobs; 0 means one per CPU core.")
    lock_wait_seconds: float = Field(
        60, gt=0, le=3600, description="pg_dump gives up after waiting this long for a lock."
    )
    directory_format_above_bytes: int = Field(
        64 * 1024 * 1024, ge=0, description="auto uses the directory format above this size."
    )
    keep_last: int = Field(
        10, ge=1, le=10000, description="Retention: the newest N backups always stay."
    )
    keep_days: float = Field(
        30,
        ge=0,
        le=3650,
        description="Retention: backups younger than this stay too; an older one beyond the "
        "newest keep_last goes after a successful migration. 0: by count only.",
    )


class ProbePolicy(_Policy):
    """When the application counts as healthy after a change."""

    consecutive_successes: int = Field(3, ge=1, le=100)
    interval_seconds: float = Field(0.25, gt=0, le=60)
    deadline_seconds: float = Field(60, gt=0, le=3600)
    request_timeout_seconds: float = Field(5, gt=0, le=60)


class ApprovalPolicy(_Policy):
    """Who must sign off a migration, and how long the run waits for them."""

    mode: Literal["always", "risky", "never"] = Field(
        "always",
        description="always; risky (at or above risk_threshold, or when the risk is unknown); "
        "never (refused for production targets).",
    )
    risk_threshold: RiskLevel = Field(RiskLevel.MEDIUM, description="With mode=risky.")
    approvers: list[PersonName] = Field(
        default_factory=list,
        max_length=inputs.APPROVERS,
        description="Who may approve (case-insensitive); empty means anyone but the requester.",
    )
    four_eyes: bool = Field(True, description="The requester may not approve their own run.")
    timeout_seconds: int = Field(
        3600, ge=1, le=7 * 86400, description="How long the run waits for a decision."
    )
    poll_interval_seconds: float = Field(
        5, gt=0, le=60, description="How often the paused run looks for a decision."
    )

    def needs_approval(self, risk: str | None) -> bool:
        """High and critical plans always need a person, whatever ``mode`` says."""
        if self.mode == "always" or risk in (RiskLevel.HIGH, RiskLevel.CRITICAL):
            return True
        if self.mode == "never":
            return False
        return risk not in RISK_LEVELS or RISK_LEVELS.index(risk) >= RISK_LEVELS.index(
            self.risk_threshold
        )


class MigrationWindow(_Policy):
    """A recurring time when upgrades may start: a cron start, a time zone and a length."""

    cron: str = Field(..., max_length=100, description="When the window opens, e.g. '0 2 * * SAT'.")
    timezone: str = Field(
        "UTC", max_length=64, description="IANA time zone of the cron, e.g. Europe/Berlin."
    )
    duration_minutes: int = Field(..., gt=0, le=7 * 24 * 60, description="How long it stays open.")
    name: Annotated[str, AfterValidator(_no_nul)] = Field(
        "", max_length=inputs.WINDOW_NAME, description="What operators call it."
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from cronsim import CronSim, CronSimError

        try:
            CronSim(value, datetime(2026, 1, 1, tzinfo=UTC))
        except CronSimError as exc:
            raise ValueError(f"not a cron expression: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {inputs.shown(value)}") from None
        return value


class WindowPolicy(_Policy):
    """When the upgrade may start; planning and approval may happen at any time."""

    windows: list[MigrationWindow] = Field(
        default_factory=list,
        description="None: any time (refused for production targets).",
    )
    wait_limit_hours: float = Field(
        168, gt=0, le=24 * 60, description="Fail, changing nothing, if no window fits sooner."
    )
    safety_factor: float = Field(
        2.0, ge=1, le=20, description="The rehearsed duration times this must fit the window."
    )
    minimum_minutes: float = Field(
        5, ge=0, description="The least time left in a window for an upgrade to start."
    )


class RehearsalPolicy(_Policy):
    """The dry run on a copy of the database before approval."""

    enabled: bool = Field(True, description="Rehearse the plan on a scratch copy first.")
    must_succeed: bool = Field(
        False, description="Refuse the run when the rehearsal fails (or was skipped)."
    )
    skip_above_bytes: int = Field(
        5 * 2**30, ge=0, description="Do not rehearse databases larger than this."
    )


class ImpactPolicy(_Policy):
    """What the application may feel: measured under load on the rehearsal's copy, watched
    during the upgrade, and the budget that decides whether a person must look."""

    rehearse_under_load: bool = Field(
        True, description="Run a workload against the rehearsal's copy while its upgrade runs."
    )
    workload_file: str = Field(
        "",
        max_length=500,
        description="A pgbench script (on the worker) to run against the copy; empty: the "
        "target's top queries from pg_stat_statements, else a generic read/write mix.",
    )
    rate: float = Field(50, gt=0, le=10_000, description="Workload transactions per second.")
    clients: int = Field(4, ge=1, le=64, description="Workload connections.")
    baseline_seconds: float = Field(
        2, ge=0.5, le=600, description="Load without the migration, to compare against."
    )
    max_wait_ms: float = Field(
        500,
        gt=0,
        le=3_600_000,
        description="Budget: no application query waits longer than this behind the migration.",
    )
    max_failed_queries: int = Field(
        0, ge=0, le=1_000_000, description="Budget: application queries that may fail."
    )
    max_p99_ratio: float | None = Field(
        None, ge=1, le=1000, description="Budget: p99 latency during the upgrade / baseline p99."
    )
    over_budget: Literal["person", "refuse"] = Field(
        "person",
        description="A plan over budget on the copy: a person decides with the numbers in "
        "front of them (whatever approval.mode says), or the run is refused.",
    )
    cancel_queued: bool = Field(
        True,
        description="During the upgrade, cancel our statement while it is still queued for its "
        "lock once an application query has waited max_wait_ms behind it (retried as a lock "
        "timeout), instead of letting the queue pile up.",
    )


class RiskPolicy(_Policy):
    """What the risk analysis may block."""

    allow_critical: bool = Field(
        False, description="Let a critical plan run (it still needs approval)."
    )
    override_reason: OverrideReason = Field(
        "", description="Required with allow_critical: why this critical change must run."
    )
    changed_history_reason: OverrideReason = Field(
        "",
        description="Migrate although revision files already applied were changed since they "
        "ran: say why (the ledger records the new checksums and this reason).",
    )


class MigrationPolicy(_Policy):
    """Everything an operator may tune about a migration run; the defaults are the safe ones."""

    approval: ApprovalPolicy = ApprovalPolicy()
    risk: RiskPolicy = RiskPolicy()
    rehearsal: RehearsalPolicy = RehearsalPolicy()
    impact: ImpactPolicy = ImpactPolicy()
    window: WindowPolicy = WindowPolicy()
    lock: LockPolicy = LockPolicy()
    preflight: PreflightPolicy = PreflightPolicy()
    backup: BackupPolicy = BackupPolicy()
    probe: ProbePolicy = ProbePolicy()


class RolloutPolicy(_Policy):
    """How a fleet rolls one approved change out: canary, waves, parallelism, error budget."""

    canary: int = Field(1, ge=0, le=100, description="Targets migrated first (the smallest).")
    wave_size: int = Field(
        0, ge=0, le=10_000, description="Targets per wave after the canary; 0: wave_percent."
    )
    wave_percent: float = Field(
        25, gt=0, le=100, description="With wave_size 0: each wave's share of the rest."
    )
    parallel: int = Field(4, ge=1, le=200, description="Member runs at once, fleet-wide.")
    max_failures: int = Field(
        0, ge=0, le=10_000, description="Failed members tolerated; one more stops new starts."
    )
    max_failure_percent: float | None = Field(
        None,
        ge=0,
        le=100,
        description="The failed share of the fleet tolerated; when set, instead of max_failures.",
    )
    approve_each_wave: bool = Field(False, description="Pause for a person between waves.")
    on_excluded: Literal["skip", "refuse"] = Field(
        "skip",
        description="Members the census leaves out (drifted, unreachable, unknown revision, "
        "unfinished run): skip them, or refuse the whole fleet.",
    )
    member_deployment: str = Field(
        "migrate/migrate-fleet-member",
        max_length=200,
        description="The deployment each member's migrate run is started from (its work pool "
        "decides which workers may take it).",
    )
    member_timeout_seconds: int = Field(
        6 * 3600, ge=10, le=7 * 86400, description="How long a member run may take."
    )
    member_start_seconds: int = Field(
        900,
        ge=5,
        le=7 * 86400,
        description="A member run no worker has taken after this long is cancelled and fails "
        "(no worker serves the pool, or all are busy).",
    )


class FleetPolicy(_Policy):
    """A fleet: how it rolls out, and the policy every member's migration runs under."""

    rollout: RolloutPolicy = RolloutPolicy()
    migration: MigrationPolicy = MigrationPolicy()


class FleetApproval(_Policy):
    """A fleet's approval, handed to each member run: it checks that it is about to apply the
    plan that was approved, and records who approved it instead of asking again."""

    fleet_id: str = Field(..., max_length=64)
    fleet_run_id: str = Field(..., max_length=36, description="The fleet's flow run.")
    approved_by: PersonName
    reason: str = Field("", max_length=inputs.REASON)
    from_revision: str | None = Field(None, max_length=inputs.REVISION)
    to_revision: str = Field(..., max_length=inputs.REVISION)
    plan_digest: str = Field(..., min_length=64, max_length=64)
