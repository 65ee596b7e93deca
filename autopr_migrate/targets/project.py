"""The Alembic project a target's history lives in: configuration, never code of ours.

A project says where its history is (an ``alembic.ini``, or a script location and version
locations), the ``-x`` arguments its ``env.py`` expects, the version table it keeps its revision
in, its models' ``MetaData`` by import path (for drift; optional), and the environment variables
its ``env.py`` reads its database from (for histories that take their URL from their own
settings; ``{url}`` stands for the target's URL).

Projects are declared in ``[tool.autopr-migrate.projects.<name>]`` of the ``pyproject.toml`` in
the working directory, or of the TOML file ``AUTOPR_MIGRATE_CONFIG`` names; a target names its
project in ``[tool.autopr-migrate.targets.<target>]`` (``project = "<name>"``) or in
``AUTOPR_DB_<TARGET>_PROJECT``. URLs never go in the file. Without a declaration a target uses
the default project: the ``alembic.ini`` named by ``AUTOPR_ALEMBIC_CONFIG``, else the one in the
working directory (as plain ``alembic`` finds it), and the models named by
``AUTOPR_MODELS_METADATA`` (by default AutoPR Engine's).
"""

from __future__ import annotations

import importlib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import MetaData

from autopr_migrate.errors import ConfigurationError
from autopr_migrate.policy.inputs import shown

ALEMBIC_CONFIG_ENV = "AUTOPR_ALEMBIC_CONFIG"
MODELS_METADATA_ENV = "AUTOPR_MODELS_METADATA"
CONFIG_FILE_ENV = "AUTOPR_MIGRATE_CONFIG"
DEFAULT_MODELS_METADATA = "autopr.database.models:Base.metadata"
DEFAULT_PROJECT = "default"
DEFAULT_VERSION_TABLE = "alembic_version"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_URL_TEMPLATE = re.compile(r"^\{url(?::[A-Za-z0-9_+]+)?\}$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


@dataclass(frozen=True)
class Project:
    """An Alembic project: where its history is and how its ``env.py`` is run."""

    name: str = DEFAULT_PROJECT
    config_file: Path | None = None
    script_location: str | None = None
    version_locations: tuple[str, ...] = ()
    x_arguments: tuple[str, ...] = ()
    version_table: str = DEFAULT_VERSION_TABLE
    version_table_schema: str | None = None
    models: str | None = None
    environment: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # env.py runs in a fresh process per command (settings its package caches, global state)
    isolated: bool = False
    sqlalchemy_url: str = "{url}"  # what Alembic's sqlalchemy.url option is set to
    declared_in: str = ""  # where it was configured, for error messages

    def where(self) -> str:
        return self.declared_in or f"{ALEMBIC_CONFIG_ENV} or ./alembic.ini"

    def metadata(self) -> MetaData | None:
        """The models' ``MetaData``, loaded from ``module:attribute.path``; None: not declared.

        Raises:
            ConfigurationError: the path does not name a ``MetaData``.
        """
        if not self.models:
            return None
        return load_metadata(self.models, source=f"models of project {self.name!r}")


def default_project(environ: Mapping[str, str] | None = None) -> Project:
    environ = os.environ if environ is None else environ
    override = environ.get(ALEMBIC_CONFIG_ENV, "").strip()
    models = environ.get(MODELS_METADATA_ENV, "").strip() or DEFAULT_MODELS_METADATA
    return Project(config_file=Path(override or "alembic.ini").absolute(), models=models)


def load_metadata(spec: str, *, source: str = MODELS_METADATA_ENV) -> MetaData:
    """A ``MetaData`` named by ``module:attribute.path``."""
    module_name, _, attributes = spec.partition(":")
    try:
        found = importlib.import_module(module_name)
        for attribute in attributes.split(".") if attributes else ():
            found = getattr(found, attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"{source} {shown(spec)} names no models ({type(exc).__name__}); name the "
            f"project's MetaData as module:attribute, e.g. myapp.models:Base.metadata"
        ) from None
    if not isinstance(found, MetaData):
        raise ConfigurationError(f"{source} {shown(spec)} is not a MetaData")
    return found


class _ProjectEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    config: str | None = Field(None, description="The project's alembic.ini.")
    script_location: str | None = None
    version_locations: list[str] = Field(default_factory=list)
    x: list[str] = Field(default_factory=list, description="-x arguments for env.py.")
    version_table: str = DEFAULT_VERSION_TABLE
    version_table_schema: str | None = None
    models: str | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    isolated: bool | None = Field(
        None, description="Run env.py in a fresh process; default: when environment is set."
    )
    sqlalchemy_url: str = Field(
        "{url}",
        max_length=200,
        description="Alembic's sqlalchemy.url: {url}, or {url:DRIVER} for another driver.",
    )

    @field_validator("version_table", "version_table_schema")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not _IDENTIFIER.match(value):
            raise ValueError(f"{shown(value)} is not a plain SQL identifier")
        return value

    @field_validator("sqlalchemy_url")
    @classmethod
    def _url_template(cls, value: str) -> str:
        if not _URL_TEMPLATE.match(value):
            raise ValueError(
                f"{shown(value)} is not {{url}} or {{url:DRIVER}} (URLs never go in this file)"
            )
        return value

    @field_validator("environment")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _VARIABLE.match(name):
                raise ValueError(f"{shown(name)} is not an environment variable name")
        return value


class _TargetEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str | None = None
    labels: list[str] = Field(default_factory=list, description="For fleet selection.")


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    projects: dict[str, _ProjectEntry] = Field(default_factory=dict)
    targets: dict[str, _TargetEntry] = Field(default_factory=dict)
    groups: dict[str, list[str]] = Field(
        default_factory=dict, description="Named lists of targets (names or globs) for fleets."
    )


@dataclass(frozen=True)
class Declared:
    """What the configuration file says about targets, for choosing a fleet's members."""

    labels: dict[str, tuple[str, ...]]  # target -> its labels
    groups: dict[str, tuple[str, ...]]  # group -> its members (names or globs)
    where: str


def declared(environ: Mapping[str, str] | None = None) -> Declared:
    path = config_file(os.environ if environ is None else environ)
    settings = _settings(path)
    return Declared(
        labels={name: tuple(entry.labels) for name, entry in settings.targets.items()},
        groups={name: tuple(members) for name, members in settings.groups.items()},
        where=str(path or "pyproject.toml"),
    )


def config_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The file projects are declared in: ``AUTOPR_MIGRATE_CONFIG``, else ``./pyproject.toml``."""
    environ = os.environ if environ is None else environ
    named = environ.get(CONFIG_FILE_ENV, "").strip()
    if named:
        path = Path(named).expanduser().absolute()
        if not path.is_file():
            raise ConfigurationError(f"{CONFIG_FILE_ENV} names {path}, which is not a file")
        return path
    found = Path("pyproject.toml").absolute()
    return found if found.is_file() else None


def _settings(path: Path | None) -> _Settings:
    if path is None:
        return _Settings()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"{path} cannot be read as TOML ({exc}); fix it") from None
    section: Any = data.get("tool", {}).get("autopr-migrate", {})
    if not section and path.name != "pyproject.toml":
        section = data  # a file of its own may hold the section's keys at the top
    try:
        return _Settings.model_validate(section)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise ConfigurationError(
            f"{path}: [tool.autopr-migrate] {where}: {problem['msg']}; see docs/projects.md"
        ) from None


def project_for(target: str, environ: Mapping[str, str] | None = None) -> Project:
    """The project a target's history lives in (the default project unless one is named).

    Raises:
        ConfigurationError: the target names a project nobody declared, or the file is wrong.
    """
    environ = os.environ if environ is None else environ
    path = config_file(environ)
    settings = _settings(path)
    variable = f"AUTOPR_DB_{target.upper().replace('-', '_')}_PROJECT"
    named = environ.get(variable, "").strip()
    if not named and target in settings.targets:
        named = settings.targets[target].project or ""
    if not named or (named == DEFAULT_PROJECT and DEFAULT_PROJECT not in settings.projects):
        return default_project(environ)
    entry = settings.projects.get(named)
    if entry is None or path is None:
        declared = ", ".join(sorted(settings.projects)) or "none"
        raise ConfigurationError(
            f"target {target!r} names project {shown(named)}, which is not declared (declared: "
            f"{declared}); add [tool.autopr-migrate.projects.{named}] to "
            f"{path or 'pyproject.toml'}"
        )
    return _project(named, entry, path)


def _project(name: str, entry: _ProjectEntry, path: Path) -> Project:
    base = path.parent
    if entry.config is None and entry.script_location is None:
        raise ConfigurationError(
            f"project {name!r} in {path} names neither config (its alembic.ini) nor "
            f"script_location: set one of them"
        )
    config = (base / entry.config).absolute() if entry.config else None
    if config is not None and not config.is_file():
        raise ConfigurationError(f"project {name!r}: its config {config} is not a file")
    return Project(
        name=name,
        config_file=config,
        script_location=str((base / entry.script_location).absolute())
        if entry.script_location
        else None,
        version_locations=tuple(str((base / p).absolute()) for p in entry.version_locations),
        x_arguments=tuple(entry.x),
        version_table=entry.version_table,
        version_table_schema=entry.version_table_schema,
        models=entry.models,
        environment=tuple(sorted(entry.environment.items())),
        isolated=bool(entry.environment) if entry.isolated is None else entry.isolated,
        sqlalchemy_url=entry.sqlalchemy_url,
        declared_in=f"{path} [tool.autopr-migrate.projects.{name}]",
    )
