"""pytest-alembic's checks, on SQLite and on PostgreSQL: one head, base -> head, up/down/up
one revision at a time, and no difference between the models and the migrated database."""

from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]
