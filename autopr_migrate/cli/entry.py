"""The ``autopr-migrate`` console script: even a failure to start is one line and exit 70.

Importing the command line imports Prefect, which validates its settings on import; a bad
``PREFECT_*`` value would otherwise end the process with a traceback and exit 1, which a CI
gate reads as "medium".
"""

from __future__ import annotations

import contextlib
import io
import sys

from autopr_migrate.errors import ExitCode


def main() -> int:
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            from autopr_migrate.cli.app import main as run
    except Exception as exc:  # nothing else is loaded yet to describe it with
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        print(
            f"error: autopr-migrate could not start ({type(exc).__name__}: {first}); check the "
            f"PREFECT_* and AUTOPR_* settings in the environment",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL
    sys.stderr.write(said.getvalue())
    return run()


if __name__ == "__main__":
    sys.exit(main())
