from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import URL, Engine
from sqlalchemy.pool import NullPool

from autopr.database import make_engine
from tests.support.history import make_config


@pytest.fixture
def alembic_config():
    return make_config()


@pytest.fixture
def alembic_engine(database_url: URL) -> Iterator[Engine]:
    engine = make_engine(database_url, poolclass=NullPool)
    yield engine
    engine.dispose()
