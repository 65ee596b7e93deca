"""Use cases in plain Python, without Prefect: what flows and commands both run."""
