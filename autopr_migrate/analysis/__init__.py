"""Lint: what each statement of a plan locks, rewrites, scans and destroys, and how risky it is."""
