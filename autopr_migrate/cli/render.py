"""How commands print: rich tables for people, JSON for machines, errors as one line."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from autopr_migrate.masking import mask_secrets

Format = Literal["text", "json"]
# Outside a terminal (CI logs, pipes) tables keep their rows whole instead of folding at 80.
_WIDE = 240


def console() -> Console:
    """A console on the current standard output (tests and pipes replace it)."""
    return Console(
        file=sys.stdout,
        width=None if sys.stdout.isatty() else _WIDE,
        highlight=False,
        soft_wrap=False,
    )


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A borderless table: columns separated by spaces, as ``ps`` and ``kubectl`` print them."""
    out = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*(str(cell) for cell in row))
    print(title)
    console().print(out)


def as_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def lines(text: str | Sequence[str]) -> None:
    """Print a line, or lines (none for an empty list)."""
    if isinstance(text, str):
        print(text)
    elif text:
        print("\n".join(text))


def error(message: str) -> None:
    """One line on standard error, masked: whatever the message quotes."""
    print(f"error: {mask_secrets(' '.join(message.split()))}", file=sys.stderr)
