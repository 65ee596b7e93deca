"""The deployments' pull step: run a flow from the checkout this package is installed from.

Deploying records nothing about the deploying machine, so a deployment works on any worker
whose Python has this package installed (``make install`` installs it in editable mode), wherever
its checkout lies; no variable has to be set before deploying.
"""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def use_installed_checkout() -> dict[str, str]:
    """Change into the checkout that holds ``alembic.ini`` and ``prefect.yaml``.

    Raises:
        FileNotFoundError: the package was installed from a wheel, without its checkout.
    """
    if not (CHECKOUT / "prefect.yaml").is_file():
        raise FileNotFoundError(
            f"{CHECKOUT} holds no prefect.yaml: install this package on the worker from its "
            f"checkout (make install, or pip install -e <checkout>)"
        )
    os.chdir(CHECKOUT)
    return {"directory": str(CHECKOUT)}
