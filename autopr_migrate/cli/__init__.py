"""``autopr-migrate``: the same operations from a terminal."""
