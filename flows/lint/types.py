"""Whether a column type change narrows the data: fewer characters, digits or bytes."""

from __future__ import annotations

import math
import re

_INTS = {"int2": 2, "smallint": 2, "int4": 4, "int": 4, "integer": 4, "int8": 8, "bigint": 8}
_SIZED = re.compile(r"^(?P<base>[a-z ]+?)\s*(\((?P<size>\d+)(,\s*\d+)?\))?$")
_TEXT = {"varchar", "character varying", "text", "bpchar", "char", "character"}


def _family(type_name: str) -> tuple[str, float] | None:
    match = _SIZED.match(type_name.strip().lower().removeprefix("pg_catalog."))
    if not match:
        return None
    base, size = match["base"].strip(), match["size"]
    if base in _INTS:
        return "int", _INTS[base]
    if base in _TEXT:
        return "text", int(size) if size and base != "text" else math.inf
    if base in ("numeric", "decimal"):
        return "numeric", int(size) if size else math.inf
    return None


def narrows(old: str, new: str) -> bool:
    """True when every value of ``old`` may not fit ``new`` (same family, smaller size)."""
    before, after = _family(old), _family(new)
    if before is None or after is None or before[0] != after[0]:
        return False
    return after[1] < before[1]
