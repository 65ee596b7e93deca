"""The test bed: real SQLite files and real PostgreSQL databases, one fresh database per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import URL, make_url

from autopr_migrate.masking import forget_secrets
from tests.support.alembic_run import PROJECT_ROOT
from tests.support.databases import (
    admin_url_from_env,
    check_postgresql_answers,
    new_database,
)

# Variables that choose databases or change behaviour; no test may inherit them.
ENVIRONMENT_PREFIXES = ("DATABASE_URL", "AUTOPR_DB_", "AUTOPR_HEALTH_", "PGPASSWORD", "PGHOST")

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

# Property tests: a few hundred examples each in the suite; HYPOTHESIS_PROFILE=thorough for a
# long hunt before a release.
settings.register_profile("suite", max_examples=300, deadline=None)
settings.register_profile("thorough", max_examples=20_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

_ADMIN_URL = admin_url_from_env()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that does not care about the dialect runs on SQLite only; PostgreSQL runs where
    behaviour differs (``both_dialects``) or where a test asks for it by name. Tests marked
    ``long`` run first."""
    dropped = [item for item in items if _postgresql_run_of_a_dialect_blind_test(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]
    # The longest tests first: the workers share out the rest meanwhile, and none is left
    # running one long test alone at the end.
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def _postgresql_run_of_a_dialect_blind_test(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is None or callspec.params.get("database_url") != "postgresql":
        return False
    named = any(
        mark.args and mark.args[0] == "database_url" for mark in item.iter_markers("parametrize")
    )
    return not named and item.get_closest_marker("both_dialects") is None


def pytest_sessionstart(session: pytest.Session) -> None:
    problem = check_postgresql_answers(_ADMIN_URL)
    if problem:
        pytest.exit(problem, returncode=3)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(ENVIRONMENT_PREFIXES):
            monkeypatch.delenv(name)
    yield
    forget_secrets()  # passwords one test parsed must not mask another's text


@pytest.fixture(scope="session")
def postgresql_admin_url() -> URL:
    return _ADMIN_URL


@pytest.fixture
def postgresql_url(postgresql_admin_url: URL) -> Iterator[URL]:
    """A new, empty PostgreSQL database, dropped after the test."""
    with new_database(postgresql_admin_url) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> URL:
    return make_url(f"sqlite:///{tmp_path}/autopr.db")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> URL:
    """An empty database of each kind: a ``tmp_path`` SQLite file, a fresh PostgreSQL database."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the schema history that a test may extend with revisions of its own."""
    root = tmp_path / "history"
    shutil.copytree(
        PROJECT_ROOT / "alembic", root / "alembic", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(PROJECT_ROOT / "alembic.ini", root / "alembic.ini")
    monkeypatch.setenv("AUTOPR_ALEMBIC_CONFIG", str(root / "alembic.ini"))
    return root / "alembic" / "versions"
