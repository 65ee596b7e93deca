"""What a run killed mid-way leaves in Prefect, tidied: its state and its concurrency slot.

The server never hears of a SIGKILL: the flow run stays Running, and the lease on the target's
``migrate-<target>`` slot lives until it expires (never, on a server without the lease
repossessor). Called once the database is settled and nobody holds its migration lock.
"""

from __future__ import annotations

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed

from autopr_migrate.errors import describe
from autopr_migrate.orchestration.steps.lock import limit_name
from autopr_migrate.targets.targets import Target


def release_dead_run(target: Target, flow_run_id: str | None) -> list[str]:
    """Mark the dead run Crashed and free ``migrate-<target>`` (its lease outlives a SIGKILL)."""
    lines = []
    try:
        with get_client(sync_client=True) as client:
            if flow_run_id:
                try:
                    run = client.read_flow_run(flow_run_id)
                except ObjectNotFound:
                    run = None
                if run is not None and run.state is not None and not run.state.is_final():
                    client.set_flow_run_state(
                        run.id,
                        Crashed(
                            message="its process died during the migration; resolved by an operator"
                        ),
                        force=True,
                    )
                    lines.append(f"flow run {run.name} marked Crashed (it was {run.state.name})")
            name = limit_name(target)
            try:
                limit = client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                return lines
            if limit.active_slots:
                client.update_global_concurrency_limit(
                    name, GlobalConcurrencyLimitUpdate(active_slots=0)
                )
                lines.append(f"concurrency limit {name}: the dead run's slot was freed")
    except Exception as exc:  # the database is settled; Prefect can be tidied later
        lines.append(
            f"could not tidy up in Prefect ({describe(exc)}): if the next run waits for "
            f"the concurrency limit {limit_name(target)}, reset it in the UI"
        )
    return lines
