"""Database URLs kept in Prefect Secret blocks (``autopr-db-<target>``), for target lookup."""

from __future__ import annotations

from prefect.blocks.system import Secret
from prefect.settings import PREFECT_API_URL


def secret_block(block_name: str) -> str | None:
    """The Secret block's value, or None when it does not exist or no Prefect API is set."""
    if not PREFECT_API_URL.value():
        return None
    try:
        value = Secret.load(block_name, _sync=True).get()
    except (ValueError, KeyError):
        return None
    return str(value).strip() or None
