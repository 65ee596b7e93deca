"""The `rollback` flow's deployment entry point (`prefect.yaml` names this file)."""

from autopr_migrate.flows.rollback import rollback

__all__ = ["rollback"]
