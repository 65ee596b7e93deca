"""Run pg_dump and pg_restore against a target without a password on any command line.

The connection goes through libpq's environment (PGHOST, PGPORT, ...) and the password through
a temporary ``0600`` pgpass file that is deleted afterwards, so neither ``ps`` nor
``/proc/<pid>/environ`` shows it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import URL

from autopr_migrate.masking import mask_secrets

PG_BIN_DIR_ENV = "AUTOPR_PG_BIN_DIR"
_QUERY_TO_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "application_name": "PGAPPNAME",
    "host": "PGHOST",
    "port": "PGPORT",
}


_INHERITED = {"PATH", "HOME", "LANG", "TZ", "TMPDIR", "PGSYSCONFDIR", "PGSERVICEFILE"}


class ToolError(RuntimeError):
    """A PostgreSQL client program is missing or failed; the message is already masked."""


def binary(name: str) -> str:
    directory = os.environ.get(PG_BIN_DIR_ENV, "").strip()
    found = str(Path(directory) / name) if directory else shutil.which(name)
    if not found or not Path(found).exists():
        raise ToolError(
            f"{name} was not found; install the PostgreSQL client of the server's major version "
            f"(postgresql-client-15) or set {PG_BIN_DIR_ENV}"
        )
    return found


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


@contextmanager
def libpq_environment(url: URL) -> Iterator[dict[str, str]]:
    """The environment that connects libpq tools to ``url``, with the password in a pgpass file.

    Nothing else is inherited: our own environment holds database URLs with passwords.
    """
    env = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith("LC_")}
    if url.host:
        env["PGHOST"] = url.host
    if url.port:
        env["PGPORT"] = str(url.port)
    if url.username:
        env["PGUSER"] = url.username
    env["PGDATABASE"] = url.database or ""
    env["PGCONNECT_TIMEOUT"] = "10"
    for key, variable in _QUERY_TO_ENV.items():
        value = url.query.get(key)
        if value:
            env[variable] = value if isinstance(value, str) else value[0]
    if not url.password:
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="autopr-pgpass-") as directory:
        passfile = Path(directory) / "pgpass"
        descriptor = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(f"*:*:*:*:{_escape(str(url.password))}\n")
        env["PGPASSFILE"] = str(passfile)
        yield env


def run(
    args: Sequence[str], *, url: URL, timeout: float | None = None, options: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a libpq tool against ``url``; raise ``ToolError`` with its masked stderr on failure.

    ``options`` become the server session's settings (PGOPTIONS).
    """
    with libpq_environment(url) as env:
        if options:
            env["PGOPTIONS"] = options
        try:
            result = subprocess.run(
                list(args),
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                umask=0o077,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ToolError(f"{Path(args[0]).name} did not finish within {timeout:g} s") from None
    if result.returncode != 0:
        tail = " ".join(result.stderr.strip().splitlines()[-3:])
        raise ToolError(f"{Path(args[0]).name} exited {result.returncode}: {mask_secrets(tail)}")
    return result
