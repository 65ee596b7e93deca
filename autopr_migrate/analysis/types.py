"""Column types as PostgreSQL compares them: does a type change rewrite the table, or narrow it?

PostgreSQL (9.2 and later, checked on 15: ``relfilenode`` unchanged) changes these types
without touching a row: the same type restated; ``varchar``/``varbit`` to a longer or no limit;
``varchar`` and ``text`` into each other when no limit is added; ``numeric`` to more precision
at the same scale, or to no limit; ``timestamp``/``timestamptz``/``time``/``interval`` to more
(or unlimited) fractional precision; ``cidr`` to ``inet``; and, in a session whose time zone is
UTC (PostgreSQL 12+), ``timestamp`` and ``timestamptz`` into each other. Anything else rewrites.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ALIASES = {
    "character varying": "varchar",
    "character": "bpchar",
    "char": "bpchar",
    "integer": "int4",
    "int": "int4",
    "smallint": "int2",
    "bigint": "int8",
    "boolean": "bool",
    "double precision": "float8",
    "real": "float4",
    "decimal": "numeric",
    "bit varying": "varbit",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "time without time zone": "time",
    "time with time zone": "timetz",
}
# "timestamp(3) with time zone": the precision sits inside the name.
_FORMATTED = re.compile(
    r"^(?P<head>[a-z_][a-z0-9_ ]*+)\s*(?:\((?P<mods>[0-9,\s]*)\))?(?P<tail>[a-z ]*?)"
    r"(?P<array>(?:\[\d*\])*)$"
)
_WIDER_LIMIT = {"varchar", "varbit"}
_PRECISION = {"timestamp", "timestamptz", "time", "timetz", "interval"}
_INTS = {"int2": 2, "int4": 4, "int8": 8}
_CHARACTER = {"varchar", "bpchar", "text"}


@dataclass(frozen=True)
class SqlType:
    base: str
    modifiers: tuple[int, ...] = ()
    array: bool = False

    def __str__(self) -> str:
        mods = f"({','.join(map(str, self.modifiers))})" if self.modifiers else ""
        return f"{self.base}{mods}{'[]' if self.array else ''}"


def parse_type(text: str) -> SqlType | None:
    """A type as ``format_type`` prints it or as SQL writes it; None when it cannot be read."""
    if len(text) > 200:
        return None
    cleaned = " ".join(text.strip().lower().replace('"', "").split())
    cleaned = cleaned.removeprefix("pg_catalog.")
    match = _FORMATTED.match(cleaned)
    if not match:
        return None
    name = " ".join(f"{match['head']} {match['tail']}".split())
    mods = tuple(int(m) for m in (match["mods"] or "").replace(" ", "").split(",") if m)
    base = _ALIASES.get(name, name)
    if base == "interval" and len(mods) == 2:
        mods = mods[1:]  # the first is the field mask (YEAR TO MONTH, ...), always "all" here
    if base == "numeric" and len(mods) == 1:
        mods = (mods[0], 0)
    return SqlType(base, mods, bool(match["array"]))


# Time zone names PostgreSQL treats as UTC.
UTC_NAMES = {
    "utc",
    "etc/utc",
    "gmt",
    "etc/gmt",
    "uct",
    "etc/uct",
    "universal",
    "etc/universal",
    "zulu",
    "etc/zulu",
    "z",
    "gmt0",
    "etc/gmt0",
    "etc/gmt+0",
    "etc/gmt-0",
}
_TIMESTAMPS = {"timestamp", "timestamptz"}


def rewrites(old: SqlType, new: SqlType, *, utc_session: bool = False) -> bool:
    """Whether ``ALTER COLUMN ... TYPE new`` (without ``USING``) rewrites a column of ``old``."""
    if old == new:
        return False
    if old.array or new.array:
        return True  # PostgreSQL converts every element, even where the element types would not
    if utc_session and {old.base, new.base} == _TIMESTAMPS and not old.array and not new.array:
        return not _limit_grows(old, new)
    if old.base in _WIDER_LIMIT and new.base == old.base:
        return not _limit_grows(old, new)
    if old.base in ("varchar", "text") and new.base in ("varchar", "text"):
        return bool(new.modifiers)  # text -> varchar(n) checks every value
    if old.base == new.base == "numeric":
        if not new.modifiers:
            return False
        if len(old.modifiers) != 2 or len(new.modifiers) != 2:
            return old.modifiers[:1] != new.modifiers[:1] or bool(new.modifiers[1:])
        return new.modifiers[1] != old.modifiers[1] or new.modifiers[0] < old.modifiers[0]
    if old.base == new.base and old.base in _PRECISION:
        return not _limit_grows(old, new)
    return not (old.base == "cidr" and new.base == "inet")


def _limit_grows(old: SqlType, new: SqlType) -> bool:
    if not new.modifiers:
        return True
    return bool(old.modifiers) and new.modifiers[0] >= old.modifiers[0]


def narrows(old: SqlType, new: SqlType) -> bool:
    """True when some value of ``old`` may not fit ``new``: fewer characters, digits or bytes."""
    if old.base in _INTS and new.base in _INTS:
        return _INTS[new.base] < _INTS[old.base]
    if old.base in _CHARACTER and new.base in _CHARACTER:
        return _size(new) < _size(old)
    if old.base == new.base == "numeric":
        if not new.modifiers:
            return False
        if not old.modifiers:
            return True
        old_scale = old.modifiers[1] if len(old.modifiers) > 1 else 0
        new_scale = new.modifiers[1] if len(new.modifiers) > 1 else 0
        whole_digits = (new.modifiers[0] - new_scale) < (old.modifiers[0] - old_scale)
        return whole_digits or new_scale < old_scale
    return False


def _size(sql_type: SqlType) -> float:
    if sql_type.base == "text" or not sql_type.modifiers:
        return float("inf")
    return sql_type.modifiers[0]
