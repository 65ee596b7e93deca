"""The one place in the library that calls Alembic: one function per operation.

Each builds a ``Config`` from the history's ``alembic.ini``; operations that touch a database
hand our own ``Connection`` to ``env.py`` through ``config.attributes["connection"]``, so the
connection holding the migration lock and the session timeouts is the one that migrates.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection

from autopr_migrate.errors import (
    ConfigurationError,
    OfflineRenderUnsupported,
    RenderFailed,
    describe,
)
from autopr_migrate.policy.inputs import shown
from autopr_migrate.targets.project import alembic_ini

_RELATIVE = re.compile(r"^\+(\d+)$")
# Alembic's `op` and `context` are process-wide proxies: two migrations running in threads of
# one process would overwrite each other's. Runs on different targets in one process take turns.
_ALEMBIC = threading.Lock()


@dataclass(frozen=True)
class RevisionInfo:
    """One revision of the history, as a plan lists it."""

    revision: str
    message: str
    path: Path

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def make_config(*, connection: Connection | None = None, **attributes: Any) -> Config:
    """An Alembic config for the history, bound to ``connection`` if given."""
    config = Config(str(alembic_ini()))
    config.attributes["configure_logger"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    config.attributes.update(attributes)
    return config


class UnusableHistory(ConfigurationError):
    """The history cannot be read: its configuration is wrong, or a revision file fails."""


class BrokenHistory(UnusableHistory):
    """A revision names a parent whose file is gone."""

    def __init__(self, revision: str, directory: str) -> None:
        self.revision = revision
        super().__init__(
            f"the schema history is broken: revision {revision} is another revision's parent, "
            f"but no file in {directory} has it; restore it from version control (`git log "
            f"--diff-filter=D -- alembic/versions`)"
        )


def script_directory() -> ScriptDirectory:
    """The history's scripts, every revision file loaded.

    Raises:
        BrokenHistory: a revision's parent file is gone.
        UnusableHistory: the Alembic configuration is wrong, or a revision file fails to load.
    """
    ini = alembic_ini()
    try:
        script = ScriptDirectory.from_config(make_config())
    except Exception as exc:  # a missing file or directory, an unreadable ini: all Alembic's
        raise UnusableHistory(
            f"the Alembic configuration {ini} is not usable ({describe(exc)[:200]}); fix it, "
            f"or point AUTOPR_ALEMBIC_CONFIG at the project's alembic.ini"
        ) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Alembic warns, then fails with a bare KeyError
        try:
            script.revision_map.heads  # noqa: B018 - building the map finds a lost file
        except KeyError as exc:
            raise BrokenHistory(str(exc.args[0]), script.versions) from None
        except Exception as exc:  # a revision file's own code failed as it was loaded
            raise UnusableHistory(
                f"a revision file in {script.versions} fails to load ({describe(exc)[:200]}); "
                f"fix that file"
            ) from None
    return script


def heads() -> list[str]:
    """The head revisions of the history this code ships."""
    return list(script_directory().get_heads())


def current(connection: Connection) -> str | None:
    """The revision the database is at, ``None`` at base; several heads joined by commas."""
    heads = MigrationContext.configure(connection).get_current_heads()
    return ",".join(sorted(heads)) or None


def is_known(revision: str) -> bool:
    """Whether ``revision`` names exactly one revision (the history's own errors propagate)."""
    script = script_directory()
    try:
        return script.get_revision(revision) is not None
    except (CommandError, RevisionError):
        return False


def _info(script: Script) -> RevisionInfo:
    return RevisionInfo(script.revision, (script.doc or "").strip(), Path(script.path))


def pending(current_revision: str | None, target: str = "heads") -> list[RevisionInfo]:
    """Each revision an upgrade from ``current_revision`` to ``target`` runs, in order."""
    revisions = script_directory().iterate_revisions(target, current_revision or "base")
    return [_info(script) for script in reversed(list(revisions))]


def pending_if_known(current_revision: str | None) -> list[RevisionInfo] | None:
    """``pending`` to the heads; None when the database's revision is not in this history."""
    try:
        return pending(current_revision)
    except (CommandError, RevisionError):
        return None


def ancestors(revision: str | None) -> set[str]:
    """``revision`` and every revision below it."""
    if revision is None:
        return set()
    return {script.revision for script in script_directory().iterate_revisions(revision, "base")}


def multiple_heads_advice(found: list[str]) -> str:
    return (
        f"the history has {len(found)} heads ({', '.join(found)}); merge them with "
        f'`alembic merge heads -m "merge"`, deploy that code, then migrate to the merge revision'
    )


def resolve(spec: str, current_revision: str | None) -> str:
    """Turn ``head``, ``+N``, a revision id or a unique prefix into exactly one revision id.

    Raises:
        ConfigurationError: unknown, ambiguous, ``base``, or beyond the head.
    """
    script = script_directory()
    found = list(script.get_heads())
    spec = (spec or "").strip()
    if spec in ("head", "heads"):
        if len(found) != 1:
            raise ConfigurationError(multiple_heads_advice(found))
        return found[0]
    relative = _RELATIVE.match(spec)
    if relative:
        steps = int(relative.group(1))
        path = pending(current_revision, found[0] if len(found) == 1 else "heads")
        if steps < 1 or steps > len(path):
            raise ConfigurationError(
                f"revision {shown(spec)} is beyond the head: the database is {len(path)} "
                f"revision(s) behind {', '.join(found)}"
            )
        return path[steps - 1].revision
    if spec in ("", "base") or spec.startswith("-"):
        raise ConfigurationError(
            f"revision {shown(spec or '(empty)')} would downgrade; migrate only upgrades: use "
            f"the rollback flow to go back"
        )
    return _one_revision(script, spec, found)


def identify(spec: str) -> str:
    """The full id of the revision ``spec`` (an id or a unique prefix) names.

    Raises:
        ConfigurationError: no revision, or several, start with ``spec``.
    """
    script = script_directory()
    return _one_revision(script, spec.strip(), list(script.get_heads()))


def _one_revision(script: ScriptDirectory, spec: str, found: list[str]) -> str:
    """The revision ``spec`` (an id or a unique prefix) names; refusals name the candidates."""
    known = [r.revision for r in script.walk_revisions()]
    if spec in known:
        return spec
    candidates = sorted(r for r in known if r.startswith(spec))
    if len(candidates) > 1:
        listed = ", ".join(candidates[:5]) + (
            f" and {len(candidates) - 5} more" if len(candidates) > 5 else ""
        )
        raise ConfigurationError(
            f"revision prefix {shown(spec)} is ambiguous: {len(candidates)} revisions start "
            f"with it ({listed}); type more of the one you mean"
        )
    if not candidates:
        raise ConfigurationError(
            f"revision {shown(spec)} is not in the history; the heads are {', '.join(found)}; "
            f"`alembic history` lists them all"
        )
    return candidates[0]


def render_sql(dialect: str, current_revision: str | None, target: str) -> str:
    """The SQL an upgrade from ``current_revision`` to ``target`` runs, in ``dialect``."""
    buffer = io.StringIO()
    config = make_config(dialect=dialect)
    config.output_buffer = buffer
    span = f"{current_revision}:{target}" if current_revision else target
    with _ALEMBIC, _render_errors():
        command.upgrade(config, span, sql=True)
    return buffer.getvalue()


@contextmanager
def _render_errors() -> Iterator[None]:
    try:
        yield
    except CommandError as exc:
        if "--sql mode" in str(exc):
            raise OfflineRenderUnsupported(str(exc)) from None
        raise RenderFailed(str(exc)) from None


RevisionCallback = Callable[[str, str, bool], None]


def _version_callback(on_revision: RevisionCallback | None) -> Callable[..., None] | None:
    if on_revision is None:
        return None

    def on_version_apply(*, step: Any, **_: Any) -> None:
        revision = step.up_revision_id if step.is_upgrade else step.down_revision_ids
        if isinstance(revision, tuple):
            revision = ",".join(revision) or "base"
        on_revision(str(revision), (step.up_revision.doc or "").strip(), step.is_upgrade)

    return on_version_apply


def upgrade(
    connection: Connection, target: str, *, on_revision: RevisionCallback | None = None
) -> None:
    """Upgrade to ``target`` on ``connection``; ``on_revision`` hears of each applied revision."""
    config = make_config(connection=connection, on_version_apply=_version_callback(on_revision))
    with _ALEMBIC:
        command.upgrade(config, target)


def downgrade(
    connection: Connection, target: str | None, *, on_revision: RevisionCallback | None = None
) -> None:
    """Downgrade to ``target`` (``None``: base) on ``connection``."""
    config = make_config(connection=connection, on_version_apply=_version_callback(on_revision))
    with _ALEMBIC:
        command.downgrade(config, target or "base")


def has_downgrade(info: RevisionInfo) -> bool:
    """Whether the revision's ``downgrade()`` does anything (not just ``pass`` or a docstring)."""
    import ast

    tree = ast.parse(info.path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "downgrade":
            return any(
                not isinstance(statement, ast.Pass)
                and not (
                    isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
                )
                for statement in node.body
            )
    return False


def render_downgrade_sql(dialect: str, current_revision: str, target: str | None) -> str:
    """The SQL a downgrade from ``current_revision`` to ``target`` (None: base) runs."""
    buffer = io.StringIO()
    config = make_config(dialect=dialect)
    config.output_buffer = buffer
    with _ALEMBIC, _render_errors():
        command.downgrade(config, f"{current_revision}:{target or 'base'}", sql=True)
    return buffer.getvalue()


def undone_by_downgrade(current_revision: str, target: str | None) -> list[RevisionInfo]:
    """The revisions a downgrade from ``current_revision`` to ``target`` undoes, newest first."""
    revisions = script_directory().iterate_revisions(current_revision, target or "base")
    return [_info(script) for script in revisions if script.revision != target]


def parent(revision: str) -> str | None:
    """The revision below ``revision`` (None: base).

    Raises:
        ConfigurationError: ``revision`` is a merge point with several parents.
    """
    below = script_directory().get_revision(revision).down_revision
    if isinstance(below, tuple | list):
        raise ConfigurationError(
            f"{revision} merges {', '.join(below)}: name the revision to go down to"
        )
    return below
