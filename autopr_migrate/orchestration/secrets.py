"""Database URLs kept in Prefect Secret blocks (``autopr-db-<target>``), for target lookup."""

from __future__ import annotations

from prefect.blocks.system import Secret
from prefect.settings import PREFECT_API_URL

from autopr_migrate.targets.selection import select_targets
from autopr_migrate.targets.targets import Target, resolve_target


def secret_block(block_name: str) -> str | None:
    """The Secret block's value, or None when it does not exist or no Prefect API is set."""
    if not PREFECT_API_URL.value():
        return None
    try:
        value = Secret.load(block_name, _sync=True).get()
    except (ValueError, KeyError):
        return None
    return str(value).strip() or None


def secret_block_names() -> list[str]:
    """Target names that have a Secret block ``autopr-db-<name>`` (none without a Prefect API)."""
    if not PREFECT_API_URL.value():
        return []
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            documents = client.read_block_documents_by_type("secret", include_secrets=False)
        except ObjectNotFound:  # no Secret block type registered on this server yet
            return []
    prefix = "autopr-db-"
    return sorted(d.name[len(prefix) :] for d in documents if d.name and d.name.startswith(prefix))


def selected_targets(selectors: list[str]) -> dict[str, Target]:
    """The targets ``selectors`` name (names, globs, groups, labels; Secret blocks count as
    known targets), resolved with their URLs from variables or Secret blocks."""
    names = select_targets(list(selectors), secret_names=secret_block_names())
    return {name: resolve_target(name, secrets=secret_block) for name in names}
