"""The exit codes of ``autopr-migrate``, one meaning each (BSD ``sysexits`` above 63).

``lint`` and ``verify`` exit with a risk level (0 low, 1 medium, 2 high, 3 critical; ``verify``
exits 3 when a check fails) and with nothing else below 64, so a CI gate that compares the
code with a level cannot mistake a crash for "medium". The other commands keep the codes of
``autopr_migrate.errors``: 1 to 5 by the kind of refusal.
"""

from __future__ import annotations

USAGE = 64  # EX_USAGE: unknown option, bad argument, unknown revision
DATA = 65  # EX_DATAERR: the input is not text, not PostgreSQL SQL, or holds no statement
NO_INPUT = 66  # EX_NOINPUT: the input file cannot be read
UNAVAILABLE = 69  # EX_UNAVAILABLE: a database the command needs does not answer
INTERNAL = 70  # EX_SOFTWARE: an error in autopr-migrate itself
INTERRUPTED = 130
