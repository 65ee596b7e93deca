"""One function that masks passwords in any text, in time linear in its length.

It knows every shape an operator types a credential in: ``scheme://user:pw@host``,
``scheme:/user:pw@host``, ``scheme//user:pw@host``, ``user:pw@host`` without a scheme, a
password with spaces or an unencoded ``@`` in it, libpq ``password=...`` strings, query
parameters, and the literal value of every password a URL of this process has carried
(``register_secret``), so a driver message that quotes one is masked too. Masking too much is
allowed; missing a password is not. Every pattern is possessive or anchored at the start of a
run, so no input makes the regular expressions backtrack.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "***"
# A password with spaces: its "@" may lie a few words on, but on the same line.
_SPACED_PASSWORD_REACH = 256
_SHORTEST_REGISTERED = 4

# scheme://user:  scheme:/user:  scheme//user:   (the password starts after the match)
_CREDENTIAL_START = re.compile(
    r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*+(?::/{1,2}|//)[^\s:/@]*+:"
)
# A run of non-blank characters holding at least one "@".
_TOKEN_WITH_AT = re.compile(r"(?<!\S)[^\s@]*+(?:@[^\s@]*+)++")
# password=..., PGPASSWORD=..., "password": "...", passwd: ...
_PASSWORD_KEY = re.compile(
    r"(?:password|passwd|pwd)[\"']?[ \t]*+(?P<separator>=>|[=:])[ \t]*+", re.IGNORECASE
)
# Schemes a URL with credentials starts with; "app://pw@db" is user "app", password "//pw".
_SCHEMES = frozenset(
    {
        "postgresql",
        "postgres",
        "pgsql",
        "sqlite",
        "mysql",
        "mariadb",
        "oracle",
        "mssql",
        "cockroachdb",
        "redis",
        "rediss",
        "amqp",
        "amqps",
        "mongodb",
        "http",
        "https",
        "ws",
        "wss",
        "ftp",
        "sftp",
        "ssh",
        "s3",
        "gs",
        "kafka",
        "nats",
        "ldap",
        "ldaps",
        "smtp",
        "smtps",
        "git",
    }
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*+(?::/{0,2}|//)")
_BLANK = re.compile(r"\s")
_WORD = re.compile(r"\S+")
_QUERY_VALUE_END = re.compile(r"[\s&#]")
_LINE_END = re.compile(r"[\r\n]")

_registered: set[str] = set()
_registered_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears from now on (too short a value would mask words)."""
    if not value or len(value) < _SHORTEST_REGISTERED:
        return
    with _registered_lock:
        _registered.update(
            form
            for form in (value, quote(value, safe=""), quote_plus(value))
            if len(form) >= _SHORTEST_REGISTERED
        )


def forget_secrets() -> None:
    """Drop every registered secret (a test's passwords must not mask the next test's text)."""
    with _registered_lock:
        _registered.clear()


def mask_secrets(text: str) -> str:
    """``text`` with every password replaced by ``***``."""
    if not text:
        return text
    spans: list[tuple[int, int]] = []
    if "@" in text:
        spans += _url_passwords(text)
        spans += _schemeless_passwords(text)
    spans += _keyed_passwords(text)
    with _registered_lock:
        secrets = tuple(_registered)
    for secret in secrets:
        start = text.find(secret)
        while start >= 0:
            spans.append((start, start + len(secret)))
            start = text.find(secret, start + len(secret))
    return _replace(text, spans)


def redact_credentials(raw_url: str) -> str:
    """A URL that could not be parsed, shown with nothing that may hold its password.

    Everything before its last ``@`` is hidden; without an ``@``, its whole authority
    (``user:pw`` parses as a host and a port).
    """
    scheme = _SCHEME.match(raw_url)
    known = scheme is not None and _is_scheme(scheme.group().rstrip(":/"))
    keep = scheme.group() if known else ""
    at = raw_url.rfind("@")
    if at >= 0:
        return mask_secrets(f"{keep if len(keep) <= at else ''}{MASK}{raw_url[at:]}")
    rest = raw_url[len(keep) :]
    path = rest.find("/") if known else -1
    return mask_secrets(f"{keep}{MASK}{rest[path:] if path >= 0 else ''}")


def _is_scheme(name: str) -> bool:
    """``postgresql+psycopg2``: a scheme this text may really start with, not a user name."""
    return name.lower().split("+", 1)[0] in _SCHEMES


def _url_passwords(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    finder = _Finder(text)
    masked_until = 0
    for match in _CREDENTIAL_START.finditer(text):
        start = match.end()
        if match.start() < masked_until:
            continue
        at = finder.next_at(start)
        if at < 0:
            break
        blank = finder.next_blank(start)
        in_same_run = blank < 0 or at < blank
        if not in_same_run and (
            at - start > _SPACED_PASSWORD_REACH or 0 <= finder.next_newline(start) < at
        ):
            continue
        run_end = finder.next_blank(at)
        end = text.rfind("@", at, run_end if run_end >= 0 else len(text))
        spans.append((start, end))
        masked_until = end
    return spans


def _schemeless_passwords(text: str) -> list[tuple[int, int]]:
    """``user:password@host`` with no scheme, or behind one the first pass did not take."""
    spans = []
    for match in _TOKEN_WITH_AT.finditer(text):
        token = match.group()
        last_at = token.rfind("@")
        userinfo, host = token[:last_at], token[last_at + 1 :]
        user_start, colon = 0, userinfo.find(":")
        has_scheme = (
            colon >= 0 and userinfo.startswith("//", colon + 1) and _is_scheme(userinfo[:colon])
        )
        if has_scheme:
            user_start = colon + 3
            colon = userinfo.find(":", user_start)  # scheme://user:password
        end = match.start() + len(userinfo)
        # "@ is %40" in prose is no credential: a host follows a password's "@"
        spaced = (
            _spaced_password_start(text, match.start())
            if not has_scheme and host[:1].isalnum()
            else None
        )
        if spaced is not None:
            spans.append((spaced, end))  # the password began a few words back
        elif colon >= 0:
            spans.append((match.start() + colon + 1, end))
    return spans


def _spaced_password_start(text: str, token_start: int) -> int | None:
    """``user:pass word@host``: where the password began, a few words before its ``@``."""
    window_start = max(0, token_start - _SPACED_PASSWORD_REACH)
    window_start = text.rfind("\n", window_start, token_start) + 1 or window_start
    segment = text[window_start:token_start]
    last_at = segment.rfind("@")
    if last_at >= 0:  # a word with an "@" before ends the search: skip past that word
        blank = _BLANK.search(segment, last_at)
        window_start += blank.start() if blank else len(segment)
        segment = text[window_start:token_start]
    if ":" not in segment:
        return None
    for word in reversed(list(_WORD.finditer(segment))):
        value = word.group()
        colon = value.find(":")
        user, secret = value[:colon], value[colon + 1 :]
        plausible = any(c.isalpha() for c in user) or any(c.isalpha() for c in secret)
        if 0 < colon < len(value) - 1 and "/" not in user and plausible:
            return window_start + word.start() + colon + 1
    return None


def _keyed_passwords(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    masked_until = 0
    for match in _PASSWORD_KEY.finditer(text):
        start = match.end()
        if match.start() < masked_until or start >= len(text):
            continue
        if text[start] in "'\"":
            end = _closing_quote(text, start + 1, text[start])
            if end + 1 < len(text) and not text[end + 1].isspace() and text[end + 1] not in ",}":
                found = _BLANK.search(text, end + 1)  # ''0000: not one quoted value after all
                end = found.start() if found else len(text)
            span = (start + 1, end)
        else:
            in_query = match.start() > 0 and text[match.start() - 1] in "?&"
            # "password: correct horse battery": a YAML-style value runs to the end of its line
            ends = (
                _QUERY_VALUE_END
                if in_query
                else _LINE_END
                if match["separator"] == ":"
                else (_BLANK)
            )
            found = ends.search(text, start)
            span = (start, found.start() if found else len(text))
        spans.append(span)
        masked_until = span[1]
    return spans


def _closing_quote(text: str, position: int, quote_char: str) -> int:
    """Where a quoted value ends (at the latest, the line's end); ``\\'`` is a quote inside."""
    while True:
        end = text.find(quote_char, position)
        newline = text.find("\n", position, len(text) if end < 0 else end)
        if newline >= 0:
            return newline
        if end < 0:
            return len(text)
        backslashes = len(text[position:end]) - len(text[position:end].rstrip("\\"))
        if backslashes % 2 == 0:
            return end
        position = end + 1


def _replace(text: str, spans: list[tuple[int, int]]) -> str:
    spans = sorted((start, end) for start, end in spans if end > start)
    if not spans:
        return text
    pieces, position = [], 0
    for start, end in spans:
        if end <= position:
            continue
        if start > position:
            pieces.append(text[position:start])
            pieces.append(MASK)
        elif not pieces or pieces[-1] != MASK:
            pieces.append(MASK)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


class _Finder:
    """The next ``@``, blank and line break at or after a position, each search done once.

    Positions asked for only grow while the text is scanned, so a cached answer at or after the
    asked position is still the right one: the whole scan stays linear.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._at = (-1, -2)  # (asked from, found at)
        self._blank = (-1, -2)
        self._newline = (-1, -2)

    def next_at(self, position: int) -> int:
        self._at = self._cached(self._at, position, lambda p: self._text.find("@", p))
        return self._at[1]

    def next_newline(self, position: int) -> int:
        self._newline = self._cached(self._newline, position, lambda p: self._text.find("\n", p))
        return self._newline[1]

    def next_blank(self, position: int) -> int:
        def search(start: int) -> int:
            found = _BLANK.search(self._text, start)
            return found.start() if found else -1

        self._blank = self._cached(self._blank, position, search)
        return self._blank[1]

    @staticmethod
    def _cached(entry: tuple[int, int], position: int, search) -> tuple[int, int]:
        asked, found = entry
        if 0 <= asked <= position and (found >= position or found == -1):
            return entry
        return position, search(position)


class MaskingFilter(logging.Filter):
    """Masks each record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: the handler reports it, as without this filter
            return True
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info)
        return True


_TRACEBACKS = logging.Formatter()
_FILTER = MaskingFilter()


def mask_logging() -> None:
    """Put the masking filter on every handler configured in this process (idempotent)."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
