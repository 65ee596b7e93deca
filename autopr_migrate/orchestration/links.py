"""Where an operator finds a run, and the command that answers it."""

from __future__ import annotations

from uuid import UUID

from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL


def ui_base() -> str:
    configured = PREFECT_UI_URL.value()
    if configured:
        return str(configured).rstrip("/")
    api = str(PREFECT_API_URL.value() or "http://127.0.0.1:4200/api").rstrip("/")
    return api.removesuffix("/api")


def resume_instructions(run_id: UUID, run_name: str) -> dict[str, str]:
    base = ui_base()
    return {
        "ui_url": f"{base}/runs/flow-run/{run_id}",
        "ui_v2_url": f"{base}/v2/runs/flow-run/{run_id}",
        "approve_command": f"autopr-migrate approve {run_name} --as NAME --reason TEXT",
        "reject_command": f"autopr-migrate reject {run_name} --as NAME --reason TEXT",
    }


def flow_run_url(run_id: UUID) -> str:
    return f"{ui_base()}/runs/flow-run/{run_id}"
