"""The flows' steps as Prefect tasks, each one task run in the UI."""
