"""An application's load on a PostgreSQL database: ``pgbench`` at a fixed rate, with a log of
every transaction (when it started, how long it took, whether it failed).

pgbench connects as ``application_name`` ``autopr-load`` (so the lock sampler counts its waits
as the application's) and through libpq's environment, never with a password on its command
line. It stops a client at that client's first SQL error; the error is kept as a failed query.
``stop()`` ends the load by terminating its sessions, which makes pgbench write its logs and
exit; what it reports after that moment is not a failure of the application.
"""

from __future__ import annotations

import ctypes
import re
import signal
import subprocess
import threading
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import URL, create_engine, text
from sqlalchemy.pool import NullPool

from autopr_migrate.backends.pgtools import ToolError, binary, libpq_environment
from autopr_migrate.masking import mask_secrets

LOAD_APPLICATION = "autopr-load"
_ABORTED = re.compile(r"client \d+ (?:script \d+ )?aborted in command \d+.*?: (.*)$")
_TERMINATE = text(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND application_name = :name"
)


@dataclass(frozen=True)
class Transaction:
    """One workload transaction: when it was due (epoch seconds), how long it took from then."""

    started: float
    latency_ms: float
    failed: bool = False


@dataclass
class LoadLog:
    transactions: list[Transaction] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)  # (when, first error line)
    began: float = 0.0
    stopped: float = 0.0
    problem: str | None = None  # the load did not run as asked (it is then not a measure)


@dataclass(frozen=True)
class Script:
    """A pgbench script and how often it runs relative to the others."""

    text: str
    weight: int = 1
    query: str = ""  # the query it replays, when it replays one with sampled parameters


class Workload:
    """``with Workload(url, scripts, rate=..., clients=...) as load: ...; log = load.stop()``."""

    def __init__(
        self,
        url: URL,
        scripts: list[Script],
        *,
        rate: float,
        clients: int,
        directory: Path,
        longest_seconds: int = 86400,
    ) -> None:
        self.url, self.scripts, self.rate, self.clients = url, scripts, rate, clients
        self.directory, self.longest_seconds = directory, longest_seconds
        self.log = LoadLog()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._stopping = False
        self._environment = ExitStack()

    def __enter__(self) -> Workload:
        files = []
        for number, script in enumerate(self.scripts):
            path = self.directory / f"load-{number}.sql"
            path.write_text(script.text)
            files += ["-f", f"{path}@{script.weight}"]
        args = [
            binary("pgbench"),
            "-n",
            "-c",
            str(self.clients),
            "-j",
            str(min(self.clients, 2)),
            "-R",
            f"{self.rate:g}",
            "-T",
            str(self.longest_seconds),
            "-l",
            "--log-prefix",
            str(self.directory / "load"),
            *files,
        ]
        # The password file stays until the load stops: pgbench's clients connect when they start.
        env = self._environment.enter_context(libpq_environment(self.url))
        env["PGAPPNAME"] = LOAD_APPLICATION
        self.log.began = time.time()
        try:
            self._process = subprocess.Popen(
                args,
                env=env,
                cwd=self.directory,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                preexec_fn=_die_with_parent,
            )
        except OSError:
            self._environment.close()
            raise
        self._reader = threading.Thread(target=self._read_errors, daemon=True)
        self._reader.start()
        time.sleep(0.3)  # a script pgbench cannot read, or a refused connection, ends it by now
        if self._process.poll() is not None:
            self._reader.join(timeout=5)
            self.log.problem = "the workload did not start: " + (
                self.log.errors[-1][1] if self.log.errors else f"exit {self._process.returncode}"
            )
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> LoadLog:
        """End the load and read its log; safe to call more than once."""
        if self._process is None or self._stopping:
            return self.log
        self._stopping = True
        self.log.stopped = time.time()
        if self._process.poll() is None:
            with suppress(Exception):
                engine = create_engine(self.url, poolclass=NullPool)
                try:
                    with engine.connect() as connection:
                        connection.execute(_TERMINATE, {"name": LOAD_APPLICATION})
                        connection.commit()
                finally:
                    engine.dispose()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self._environment.close()
        stopped = self.log.stopped
        self.log.errors = [(when, line) for when, line in self.log.errors if when < stopped]
        self.log.transactions = _read_logs(self.directory)
        return self.log

    def _read_errors(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in self._process.stderr:
            line = line.strip()
            if not line or self._stopping:
                continue
            aborted = _ABORTED.search(line)
            if aborted or ("error" in line.lower() and "results are incomplete" not in line):
                message = aborted.group(1) if aborted else line
                self.log.errors.append((time.time(), mask_secrets(" ".join(message.split()))))


def _read_logs(directory: Path) -> list[Transaction]:
    """pgbench's per-transaction logs: ``client tx latency_us script epoch_s epoch_us [lag]``."""
    transactions = []
    for path in sorted(directory.glob("load.*")):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) < 6 or not fields[4].isdigit():
                continue
            ended = int(fields[4]) + int(fields[5]) / 1e6
            if fields[2].isdigit():
                latency = int(fields[2]) / 1000.0
                transactions.append(Transaction(ended - latency / 1000.0, latency))
            elif fields[2] == "failed":
                transactions.append(Transaction(ended, 0.0, failed=True))
    return sorted(transactions, key=lambda t: t.started)


try:  # resolved here: loading a library in the forked child could deadlock
    _PRCTL = ctypes.CDLL(None).prctl
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def pgbench_available() -> str | None:
    """None when pgbench can be run, else why not."""
    try:
        binary("pgbench")
    except ToolError as exc:
        return str(exc)
    return None
