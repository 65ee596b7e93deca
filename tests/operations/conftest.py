"""Operations run as plain Python: real databases and a real /health, and no Prefect API."""

from __future__ import annotations

from tests.flows.conftest import migration_target

__all__ = ["migration_target"]
