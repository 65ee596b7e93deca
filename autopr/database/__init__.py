"""AutoPR Engine's database layer: models and engine creation."""

from autopr.database.models import NAMING_CONVENTION, Base
from autopr.database.session import session_scope
from autopr_migrate.backends.engine import make_engine

__all__ = ["NAMING_CONVENTION", "Base", "make_engine", "session_scope"]
