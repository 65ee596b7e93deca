"""Named databases: a flow parameter names a target, never a URL (parameters show in the UI).

For a target ``staging``:

- URL: ``AUTOPR_DB_STAGING_URL``, else the Prefect Secret block ``autopr-db-staging``, else
  (for the default target only) ``DATABASE_URL``.
- Health URL: ``AUTOPR_DB_STAGING_HEALTH_URL``; the default target falls back to
  ``AUTOPR_HEALTH_URL``, then ``http://127.0.0.1:8000/health``.
- Backup directory: ``AUTOPR_DB_STAGING_BACKUP_DIR``, else ``$AUTOPR_BACKUP_DIR/staging``,
  else ``./backups/staging``.
- Production: ``AUTOPR_DB_STAGING_PRODUCTION=true``; targets named ``prod``/``production``
  are production unless it says false.
- Project (its Alembic history): ``AUTOPR_DB_STAGING_PROJECT``, or
  ``[tool.autopr-migrate.targets.staging]`` in the configuration file, else the default
  project (``targets/project.py``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import URL

from autopr_migrate.errors import ConfigurationError
from autopr_migrate.masking import mask_secrets
from autopr_migrate.policy.inputs import shown
from autopr_migrate.targets.project import Project, default_project, project_for
from autopr_migrate.targets.urls import DATABASE_URL_ENV, parse_database_url, render_url

# A named secret's value, or None when there is none (Prefect Secret blocks, in orchestration).
SecretLookup = Callable[[str], str | None]

DEFAULT_TARGET_ENV = "AUTOPR_DEFAULT_TARGET"
DEFAULT_TARGET = "default"
DEFAULT_HEALTH_URL = "http://127.0.0.1:8000/health"
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
RESERVED_SUFFIX = "-health"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Target:
    """A database the flows may migrate, with where its application and backups live."""

    name: str
    url: URL = field(repr=False)
    health_url: str
    backup_dir: Path
    production: bool = False
    backup_dir_variable: str = ""  # the variable that put backup_dir there; "" for the default
    project: Project = field(default_factory=default_project)

    @property
    def masked_url(self) -> str:
        return render_url(self.url)

    @property
    def masked_health_url(self) -> str:
        return mask_secrets(self.health_url)

    @property
    def backup_dir_advice(self) -> str:
        """Which variable to change to move the backup directory: the one in effect."""
        if self.backup_dir_variable:
            return f"point {self.backup_dir_variable} (which set it) at another directory"
        return (
            f"it is the default ./backups/{self.name}: set {env_prefix(self.name)}BACKUP_DIR "
            f"or AUTOPR_BACKUP_DIR to a directory"
        )

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @property
    def resource_id(self) -> str:
        """The Prefect event resource this target's events concern."""
        return f"autopr.database.{self.name}"

    def __repr__(self) -> str:
        return f"Target(name={self.name!r}, url={self.masked_url!r}, production={self.production})"


def env_prefix(name: str) -> str:
    return f"AUTOPR_DB_{name.upper().replace('-', '_')}_"


def default_target_name(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get(DEFAULT_TARGET_ENV, "").strip() or DEFAULT_TARGET


def validate_name(name: str) -> str:
    """A target name: 1-40 lowercase letters, digits and dashes, not ending in ``-health``.

    ``AUTOPR_DB_<NAME>_HEALTH_URL`` is the health URL of target ``<name>``; a target named
    ``<name>-health`` would read its database URL from that same variable.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            f"target name {shown(name)} is not valid: use 1-40 lowercase letters, digits and "
            f"dashes (it becomes part of lock, artifact and event names)"
        )
    if name.endswith(RESERVED_SUFFIX):
        raise ConfigurationError(
            f"target name {shown(name)} ends in {RESERVED_SUFFIX!r}, which is reserved "
            f"(AUTOPR_DB_<NAME>_HEALTH_URL names a target's health URL); choose another name"
        )
    return name


def resolve_target(
    name: str, environ: Mapping[str, str] | None = None, *, secrets: SecretLookup | None = None
) -> Target:
    """Resolve a target name to its database, health URL and backup directory.

    Args:
        secrets: where ``autopr-db-<name>`` is looked up when no variable names the URL (the
            orchestration layer passes Prefect's Secret blocks); None: variables only.

    Raises:
        ConfigurationError: the name is invalid, or no URL is configured for it.
    """
    environ = os.environ if environ is None else environ
    validate_name(name)
    prefix = env_prefix(name)
    is_default = name == default_target_name(environ)
    url_variable, raw_url = _find_url(name, prefix, is_default, environ, secrets)
    try:
        url = parse_database_url(raw_url, variable=url_variable)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    backup_dir, variable = _backup_dir(name, prefix, environ)
    return Target(
        name=name,
        url=url,
        health_url=_health_url(name, prefix, is_default, environ),
        backup_dir=backup_dir,
        production=_production(name, prefix, environ),
        backup_dir_variable=variable,
        project=project_for(name, environ),
    )


def _find_url(
    name: str,
    prefix: str,
    is_default: bool,
    environ: Mapping[str, str],
    secrets: SecretLookup | None,
) -> tuple[str, str]:
    variable = f"{prefix}URL"
    if environ.get(variable, "").strip():
        return variable, environ[variable].strip()
    secret = secrets(f"autopr-db-{name}") if secrets else None
    if secret:
        return f"Secret block autopr-db-{name}", secret
    if is_default and environ.get(DATABASE_URL_ENV, "").strip():
        return DATABASE_URL_ENV, environ[DATABASE_URL_ENV].strip()
    fallback = f", or {DATABASE_URL_ENV}" if is_default else ""
    raise ConfigurationError(
        f"unknown target {name!r}: no database URL in {variable}, no Prefect Secret block "
        f"autopr-db-{name}{fallback}; set one of them (never pass a URL as a parameter)"
    )


def _health_url(name: str, prefix: str, is_default: bool, environ: Mapping[str, str]) -> str:
    variable = f"{prefix}HEALTH_URL"
    raw = environ.get(variable, "").strip()
    if not raw and is_default:
        raw = environ.get("AUTOPR_HEALTH_URL", "").strip() or DEFAULT_HEALTH_URL
    if not raw:
        raise ConfigurationError(
            f"target {name!r} has no health URL: set {variable} to its application's /health"
        )
    if not raw.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"{variable} must be an http(s) URL, got {shown(mask_secrets(raw))}"
        )
    return raw


def _backup_dir(name: str, prefix: str, environ: Mapping[str, str]) -> tuple[Path, str]:
    """(directory, the variable that set it, "" for the default)."""
    own = environ.get(f"{prefix}BACKUP_DIR", "").strip()
    if own:
        return Path(own).expanduser().absolute(), f"{prefix}BACKUP_DIR"
    root = environ.get("AUTOPR_BACKUP_DIR", "").strip()
    if root:
        return (Path(root).expanduser() / name).absolute(), "AUTOPR_BACKUP_DIR"
    return (Path("backups") / name).absolute(), ""


def _production(name: str, prefix: str, environ: Mapping[str, str]) -> bool:
    variable = f"{prefix}PRODUCTION"
    raw = environ.get(variable, "").strip().lower()
    if not raw:
        return name in ("prod", "production")
    if raw in _TRUE | _FALSE:
        return raw in _TRUE
    raise ConfigurationError(f"{variable} must be true or false, got {shown(raw)}")
