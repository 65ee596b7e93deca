"""Free-text inputs: their documented maximum lengths, and how a message may quote them.

Every limit sits below what the ledger column that stores the value holds, and is checked
before any work, so an oversized value is refused with one line instead of failing half-way
(after the backup) on a database error. Messages quote at most the first 80 characters.
"""

from __future__ import annotations

import unicodedata

from autopr_migrate.errors import ConfigurationError

SHOWN_CHARACTERS = 80
_CONTROL = {"Cc", "Zl", "Zp"}  # NUL, line breaks, escapes, U+2028: never in one-line text
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp"}
_BLANK_GLYPHS = {"\u2800", "\u3164", "\u115f", "\u1160", "\uffa0", "\u180e"}  # look like space

TARGET_NAME = 40  # ledger.target is String(40)
REVISION = 64  # ledger.from_revision / to_revision are String(64)
PERSON = 100  # requested_by, approver, each name in approvers: ledger columns hold 200
REASON = 1000  # an approval's reason
OVERRIDE_REASON = 500  # risk.override_reason, risk.changed_history_reason
WINDOW_NAME = 60
BACKUP_NAME = 255  # a backup's file name
APPROVERS = 100  # names in policy.approval.approvers

LIMITS = {
    "target": TARGET_NAME,
    "revision": REVISION,
    "requested_by": PERSON,
    "approver": PERSON,
    "reason": REASON,
    "policy.risk.override_reason": OVERRIDE_REASON,
    "policy.risk.changed_history_reason": OVERRIDE_REASON,
    "policy.window.windows[].name": WINDOW_NAME,
    "policy.approval.approvers[]": PERSON,
    "backup": BACKUP_NAME,
}


def shown(value: object) -> str:
    """``value`` quoted for a message: its first 80 characters, and how long it really is."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= SHOWN_CHARACTERS:
        return repr(text)
    return f"{text[:SHOWN_CHARACTERS]!r}... ({len(text):,} characters)"


def bounded(value: str, name: str, *, advice: str = "", one_line: bool = True) -> str:
    """``value`` if it is text within the limit ``LIMITS[name]``; otherwise refuse in one line.

    Raises:
        ConfigurationError: not text, too long, holding a NUL (no database column takes one),
            or, with ``one_line``, a line break.
    """
    limit = LIMITS[name]
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be text, got {type(value).__name__}")
    if len(value) > limit:
        raise ConfigurationError(
            f"{name} is {len(value):,} characters long; the limit is {limit}: "
            f"{advice or 'shorten it'} (it starts {shown(value)})"
        )
    allowed = "" if one_line else "\n\r\t"
    bad = next((c for c in value if c not in allowed and unicodedata.category(c) in _CONTROL), None)
    if bad is not None:
        what = {"\x00": "a NUL character", "\n": "a line break", "\r": "a line break"}.get(
            bad, f"the control character U+{ord(bad):04X}"
        )
        raise ConfigurationError(f"{name} holds {what}: {shown(value)}; pass plain text")
    return value


def visible_name(value: str) -> str:
    """A person's name as names are compared: what shows, case folded, blanks collapsed.

    Zero-width and other invisible characters are dropped, so ``ops`` followed by U+200B is
    ``ops``, and a name of nothing but invisible characters is empty.
    """
    normal = unicodedata.normalize("NFKC", value)
    shown_characters = "".join(
        c for c in normal if unicodedata.category(c) not in _INVISIBLE and c not in _BLANK_GLYPHS
    )
    return " ".join(shown_characters.split()).casefold()


def check_run_inputs(*, target: str, revision: str, requested_by: str) -> None:
    """The free-text parameters every migration flow takes, checked before anything runs."""
    bounded(target, "target", advice="use the target's name, as in AUTOPR_DB_<NAME>_URL")
    bounded(revision, "revision", advice="pass head, +N, -N, a revision id or a unique prefix")
    bounded(requested_by, "requested_by", advice="pass the requester's name")
