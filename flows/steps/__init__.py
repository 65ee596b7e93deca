"""One module per step of a migration; each exposes Prefect tasks and their pure helpers."""
