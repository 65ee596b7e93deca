"""Which targets a fleet is: names, globs, groups and labels, resolved to target names.

A target is known when a variable names its URL (``AUTOPR_DB_<NAME>_URL``), when the
configuration file declares it (``[tool.autopr-migrate.targets.<name>]``), or when a Secret
block ``autopr-db-<name>`` exists (the orchestration layer passes those names in). Selectors:

- ``tenant-7``: that target;
- ``tenant-*``: every known target the glob matches;
- ``group:tenants``: the members of ``[tool.autopr-migrate.groups] tenants = [...]`` (names or
  globs);
- ``label:eu``: every target whose ``labels`` include ``eu``.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping

from autopr_migrate.errors import ConfigurationError
from autopr_migrate.policy.inputs import shown
from autopr_migrate.targets.project import declared
from autopr_migrate.targets.targets import RESERVED_SUFFIX, validate_name

_URL_VARIABLE = re.compile(r"^AUTOPR_DB_([A-Z0-9_]+)_URL$")
_GLOB = re.compile(r"[*?\[]")
MAX_SELECTORS = 200


def known_targets(
    environ: Mapping[str, str] | None = None, secret_names: Iterable[str] = ()
) -> list[str]:
    """Every target name the environment, the configuration file and the Secret blocks name."""
    environ = os.environ if environ is None else environ
    names = set(declared(environ).labels)
    for variable, value in environ.items():
        found = _URL_VARIABLE.match(variable)
        if found and value.strip():
            name = found.group(1).lower().replace("_", "-")
            if not name.endswith(RESERVED_SUFFIX):
                names.add(name)
    names.update(secret_names)
    return sorted(name for name in names if _valid(name))


def select_targets(
    selectors: list[str],
    environ: Mapping[str, str] | None = None,
    secret_names: Iterable[str] = (),
) -> list[str]:
    """The targets ``selectors`` name, in the order first named, each once.

    Raises:
        ConfigurationError: no selector, too many, or one that matches nothing.
    """
    environ = os.environ if environ is None else environ
    if not selectors:
        raise ConfigurationError(
            "a fleet needs targets: name them, or use a glob (tenant-*), group:<name> or "
            "label:<name>"
        )
    if len(selectors) > MAX_SELECTORS:
        raise ConfigurationError(
            f"{len(selectors)} selectors are more than {MAX_SELECTORS}: use a glob, a group or "
            f"a label"
        )
    known = known_targets(environ, secret_names)
    config = declared(environ)
    chosen: dict[str, None] = {}
    for selector in selectors:
        matched = _matches(str(selector).strip(), known, config.labels, config.groups, config.where)
        chosen.update(dict.fromkeys(matched))
    return list(chosen)


def _matches(
    selector: str,
    known: list[str],
    labels: dict[str, tuple[str, ...]],
    groups: dict[str, tuple[str, ...]],
    where: str,
) -> list[str]:
    kind, _, value = selector.partition(":")
    if value and kind == "group":
        if value not in groups:
            raise ConfigurationError(
                f"group {shown(value)} is not declared in {where} ([tool.autopr-migrate.groups]; "
                f"declared: {', '.join(sorted(groups)) or 'none'})"
            )
        found = [name for member in groups[value] for name in _by_name(member, known)]
    elif value and kind == "label":
        found = [name for name in known if value in labels.get(name, ())]
    else:
        found = _by_name(selector, known)
    if not found:
        raise ConfigurationError(
            f"selector {shown(selector)} matches no known target (known: "
            f"{', '.join(known[:10]) or 'none'}{' ...' if len(known) > 10 else ''}); a target "
            f"is known by its AUTOPR_DB_<NAME>_URL, its Secret block or its entry in {where}"
        )
    return found


def _by_name(pattern: str, known: list[str]) -> list[str]:
    if _GLOB.search(pattern):
        return [name for name in known if fnmatch.fnmatchcase(name, pattern)]
    validate_name(pattern)
    return [pattern] if pattern in known else []


def _valid(name: str) -> bool:
    try:
        validate_name(name)
    except ConfigurationError:
        return False
    return True
