"""The `migrate` flow's deployment entry point (`prefect.yaml` names this file)."""

from autopr_migrate.flows.migrate import migrate

__all__ = ["migrate"]
