"""AutoPR Engine's database layer: models and engine creation."""

from autopr.database.engine import make_engine, session_scope
from autopr.database.models import NAMING_CONVENTION, Base

__all__ = ["NAMING_CONVENTION", "Base", "make_engine", "session_scope"]
