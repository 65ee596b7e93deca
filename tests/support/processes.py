"""Watch every process on the machine while a test runs: command lines and libpq environments."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

LIBPQ_TOOLS = ("pg_dump", "pg_restore", "psql")


@dataclass
class ProcessWatch:
    """Every command line seen, and the environment of every libpq tool seen."""

    command_lines: set[str] = field(default_factory=set)
    tool_environments: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def tools_seen(self) -> set[str]:
        return {line.split("\0")[0].rsplit("/", 1)[-1] for line in self.tool_environments}

    def _scan(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                line = (entry / "cmdline").read_bytes().decode(errors="replace")
                if not line:
                    continue
                self.command_lines.add(line)
                if line.split("\0")[0].rsplit("/", 1)[-1] in LIBPQ_TOOLS:
                    environ = (entry / "environ").read_bytes().decode(errors="replace")
                    self.tool_environments[line] = environ
            except OSError:
                continue

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._scan()
            time.sleep(0.002)

    def __enter__(self) -> ProcessWatch:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
