"""Prefect: tasks, the approval pause, run locks, events, artifacts, Secret blocks, set-up."""
