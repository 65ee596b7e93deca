"""An application reading a table every 50 ms while a test runs, timing each read."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import URL, create_engine, text
from sqlalchemy.pool import NullPool


@contextmanager
def reading(url: URL, table: str = "workflows") -> Iterator[list[float]]:
    """``with reading(url) as latencies:``: each read's latency in seconds, once the block ends."""
    latencies: list[float] = []
    running = threading.Event()
    running.set()

    def application() -> None:
        engine = create_engine(url, poolclass=NullPool)
        with engine.connect() as connection:
            connection.execute(text("SET statement_timeout = '20s'"))
            while running.is_set():
                started = time.monotonic()
                connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                latencies.append(time.monotonic() - started)
                connection.rollback()
                time.sleep(0.05)
        engine.dispose()

    reader = threading.Thread(target=application)
    reader.start()
    try:
        yield latencies
    finally:
        running.clear()
        reader.join(timeout=30)
