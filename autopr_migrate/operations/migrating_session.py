"""Which session a project's ``env.py`` migrates on, proven before anything changes.

The project's ``env.py`` is run as an upgrade would run it, without migrating, and the
connection it hands Alembic is asked which database it is on and which timeouts it carries.
A history whose ``env.py`` migrates another database, or strips the run's timeouts, is refused
with what to change.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from autopr_migrate.backends.dialects import SessionFacts
from autopr_migrate.backends.registry import session_facts
from autopr_migrate.backends.session import end_transaction, inherited_settings, timeouts
from autopr_migrate.errors import PreflightRefused, describe
from autopr_migrate.history import commands as alembic_ops
from autopr_migrate.policy.parameters import LockPolicy
from autopr_migrate.targets.targets import Target

_HOW_TO_FIX = (
    "let env.py migrate on the connection the tool hands it (config.attributes['connection']) "
    "or on an engine built from the sqlalchemy.url option; docs/projects.md"
)


@dataclass(frozen=True)
class MigratingSession:
    facts: SessionFacts
    is_the_runs_connection: bool
    in_own_process: bool = False

    def line(self) -> str:
        if self.in_own_process:
            whose = "a connection of its own process (the project runs isolated)"
        elif self.is_the_runs_connection:
            whose = "the run's own connection"
        else:
            whose = "a connection the project's env.py opens itself"
        settings = ", ".join(f"{name} {value}" for name, value in self.facts.settings.items())
        return f"migrates on {whose} ({self.facts.session_id}, {settings})"


def prove_migrating_session(
    target: Target, connection: Connection, policy: LockPolicy
) -> MigratingSession:
    """The session the project's ``env.py`` would migrate on, carrying the run's settings.

    Raises:
        PreflightRefused: ``env.py`` fails, reaches no migration, migrates another database, or
            its session lacks the run's lock or statement timeout.
    """
    with timeouts(connection, policy):
        expected = session_facts(connection)
        end_transaction(connection)
        try:
            seen = alembic_ops.on_migrating_connection(
                target.project, connection, session_facts, session=inherited_settings(policy)
            )
        except Exception as exc:  # the project's own code: whatever it raises is the reason
            raise PreflightRefused(
                f"the env.py of project {target.project.name!r} fails before migrating "
                f"({describe(exc)[:200]}); fix it, or {_HOW_TO_FIX}"
            ) from None
        finally:
            end_transaction(connection)
    if not seen:
        raise PreflightRefused(
            f"the env.py of project {target.project.name!r} reaches no migration online "
            f"(context.run_migrations() is never called); {_HOW_TO_FIX}"
        )
    if len(seen) > 1:
        raise PreflightRefused(
            f"the env.py of project {target.project.name!r} migrates {len(seen)} databases in "
            f"one run ({', '.join(s.found.database for s in seen)}): a run migrates one target "
            f"under its lock, backup and probe; declare each database as a target of its own "
            f"and let env.py migrate only the one it is handed; docs/projects.md"
        )
    (context,) = seen
    facts = context.found
    if not facts.same_database(expected):
        elsewhere = "" if facts.database != expected.database else " on another server"
        raise PreflightRefused(
            f"the env.py of project {target.project.name!r} would migrate database "
            f"{facts.database!r}{elsewhere}, not target {target.name!r}'s "
            f"{expected.database!r}; {_HOW_TO_FIX}, or give it the target's URL through the "
            f"project's environment"
        )
    declared = (target.project.version_table, target.project.version_table_schema)
    if (context.version_table, context.version_table_schema) != declared:
        kept = ".".join(p for p in (context.version_table_schema, context.version_table) if p)
        raise PreflightRefused(
            f"the env.py of project {target.project.name!r} keeps its revision in {kept!r}, "
            f"but the project declares {'.'.join(p for p in declared[::-1] if p)!r}: set "
            f"version_table (and version_table_schema) in [tool.autopr-migrate.projects."
            f"{target.project.name}] to what env.py passes to context.configure; "
            f"docs/projects.md"
        )
    lost = [
        f"{name} is {facts.settings.get(name)!r}, the run sets {value!r}"
        for name, value in expected.settings.items()
        if facts.settings.get(name) != value
    ]
    if lost:
        raise PreflightRefused(
            f"the session the env.py of project {target.project.name!r} migrates on does not "
            f"carry the run's settings ({'; '.join(lost)}): env.py changes them; remove its "
            f"own SET of those settings, or {_HOW_TO_FIX}"
        )
    return MigratingSession(facts, facts.session_id == expected.session_id, target.project.isolated)
