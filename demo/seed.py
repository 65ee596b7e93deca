"""Seed rows for the demo database: a small AutoPR Engine with a few deprecated workflows."""

from __future__ import annotations

from sqlalchemy import Connection, text


def seed(connection: Connection) -> None:
    connection.execute(
        text("INSERT INTO users (username, email) VALUES (:u, :e)"),
        [{"u": name, "e": f"{name}@example.com"} for name in ("ada", "grace", "linus")],
    )
    connection.execute(
        text("INSERT INTO repositories (owner, name) VALUES ('autopr', :n)"),
        [{"n": name} for name in ("engine", "web", "docs")],
    )
    connection.execute(
        text("INSERT INTO pull_requests (repository_id, number, title) VALUES (:r, :n, :t)"),
        [{"r": n % 3 + 1, "n": n, "t": f"Improve step {n}"} for n in range(1, 31)],
    )
    statuses = ("active", "active", "deprecated", "archived")
    connection.execute(
        text("INSERT INTO workflows (name, status, version) VALUES (:n, :s, 1)"),
        [{"n": f"workflow-{n}", "s": statuses[n % 4]} for n in range(1, 21)],
    )
    connection.execute(
        text(
            "INSERT INTO workflow_executions (workflow_id, pull_request_id, status,"
            " duration_seconds) VALUES (:w, :p, 'succeeded', :d)"
        ),
        [{"w": n % 20 + 1, "p": n % 30 + 1, "d": 1.5 * n} for n in range(1, 201)],
    )
