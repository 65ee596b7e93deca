"""pytest-alembic's checks, on SQLite and on PostgreSQL: one head, base -> head, up/down/up
one revision at a time, and no difference between the models and the migrated database."""

import pytest
from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)

pytestmark = pytest.mark.both_dialects  # their behaviour differs by dialect

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]
