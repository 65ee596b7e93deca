"""Progress of long safe operations (a backfill), for whoever listens: the migrate flow's
upgrade step shows it as a progress artifact. Listeners never fail the operation."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Listener = Callable[[str, int, int], None]  # (what, done, total)
_listeners: list[Listener] = []
_lock = threading.Lock()


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def report(what: str, done: int, total: int) -> None:
    for listener in list(_listeners):
        try:
            listener(what, done, total)
        except Exception:  # a listener's failure is not the operation's
            logging.getLogger(__name__).debug("a progress listener failed", exc_info=True)
