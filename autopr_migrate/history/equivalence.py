"""A revision's own declaration that earlier texts of its file did what it does.

Databases record the sha256 of each revision file they ran, and a file changed after it ran is
refused. A revision rewritten on purpose (the same schema and data, built a safer way) names the
sha256 of each earlier text it replaces, and why the result is the same, in its module:

    equivalent_sha256 = {
        "e01ebeef...": "safe.create_index builds the index the hand-written build did",
    }

The declaration is read from the file's source, never imported: it is what the reviewed diff
shows, and reading it runs nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from autopr_migrate.errors import ConfigurationError

ATTRIBUTE = "equivalent_sha256"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REASON_LIMIT = 300


class BadDeclaration(ConfigurationError):
    """A revision's ``equivalent_sha256`` is not a literal mapping of sha256 to a reason."""


def declared_equivalents(path: Path) -> dict[str, str]:
    """``{sha256 of an earlier text: why it is equivalent}`` as the file declares; empty when
    it declares nothing (or does not parse: the history reports that itself).

    Raises:
        BadDeclaration: the name is mentioned other than by one top-level literal assignment.
    """
    try:
        tree = ast.parse(path.read_bytes(), filename=path.name)
    except (OSError, SyntaxError, ValueError):
        return {}
    bindings = [node for node in ast.walk(tree) if _binds(node)]
    if not bindings:
        return {}
    declaration = next((node for node in tree.body if _declares(node)), None)
    if len(bindings) > 1 or declaration is None:
        raise BadDeclaration(
            f"{path.name[:80]}: {ATTRIBUTE} must be bound once, by a top-level "
            f"`{ATTRIBUTE} = {{...}}` and mentioned nowhere else (it is mentioned "
            f"{len(bindings)} time(s))"
        )
    return _validated(path, declaration.value)


def _declares(node: ast.stmt) -> bool:
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets = [node.target]
    else:
        return False
    return len(targets) == 1 and isinstance(targets[0], ast.Name) and targets[0].id == ATTRIBUTE


def _binds(node: ast.AST) -> bool:
    """A mention of the name: an assignment of any form, a change to it (``name[k] = v``), an
    import, a definition (a read too: nothing but the declaration may mention it)."""
    if isinstance(node, ast.Name):
        return node.id == ATTRIBUTE
    if isinstance(node, ast.alias):
        return (node.asname or node.name) == ATTRIBUTE
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.ExceptHandler):
        return node.name == ATTRIBUTE
    if isinstance(node, ast.MatchAs | ast.MatchStar):
        return node.name == ATTRIBUTE
    if isinstance(node, ast.MatchMapping):
        return node.rest == ATTRIBUTE
    return isinstance(node, ast.Global | ast.Nonlocal) and ATTRIBUTE in node.names


def _validated(path: Path, value: ast.expr) -> dict[str, str]:
    usage = (
        f"{path.name[:80]}: {ATTRIBUTE} must be a literal dict of the 64-hex sha256 of each "
        f"earlier text of the file to why it is equivalent (at most {_REASON_LIMIT} characters)"
    )
    try:
        declared = ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise BadDeclaration(f"{usage}; it is not a literal") from None
    if not isinstance(declared, dict):
        raise BadDeclaration(f"{usage}; it is a {type(declared).__name__}")
    for sha256, reason in declared.items():
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise BadDeclaration(f"{usage}; {str(sha256)[:16]!r}... is not one")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > _REASON_LIMIT:
            raise BadDeclaration(f"{usage}; the reason for {sha256[:12]}... is not")
    return {sha256: " ".join(reason.split()) for sha256, reason in declared.items()}
