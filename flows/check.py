"""The `check` flow's deployment entry point (`prefect.yaml` names this file)."""

from autopr_migrate.flows.check import check

__all__ = ["check"]
