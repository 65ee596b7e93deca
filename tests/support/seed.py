"""Rows for every table, written with plain SQL so they fit any revision from b47a91d3e6f2 on."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

STATUSES = ("active", "deprecated", "archived", "draft")


def seed(connection: Connection, *, workflows: int = 24) -> None:
    connection.execute(
        text("INSERT INTO users (id, username, email) VALUES (:id, :u, :e)"),
        [{"id": i, "u": f"user{i}", "e": f"user{i}@example.com"} for i in range(1, 6)],
    )
    connection.execute(
        text("INSERT INTO repositories (id, owner, name) VALUES (:id, 'autopr', :n)"),
        [{"id": i, "n": f"repo{i}"} for i in range(1, 4)],
    )
    connection.execute(
        text(
            "INSERT INTO pull_requests (id, repository_id, number, title, author_id) "
            "VALUES (:id, :r, :n, :t, :a)"
        ),
        [{"id": i, "r": i % 3 + 1, "n": i, "t": f"Fix {i}", "a": i % 5 + 1} for i in range(1, 13)],
    )
    connection.execute(
        text("INSERT INTO workflows (id, name, status, version) VALUES (:id, :n, :s, :v)"),
        [
            {"id": i, "n": f"workflow-{i}", "s": STATUSES[i % len(STATUSES)], "v": i % 3 + 1}
            for i in range(1, workflows + 1)
        ],
    )
    connection.execute(
        text(
            "INSERT INTO workflow_status_changes (workflow_id, from_status, to_status, changed_by)"
            " VALUES (:w, 'active', 'archived', 'user:alice')"
        ),
        [{"w": i} for i in range(1, workflows + 1) if STATUSES[i % len(STATUSES)] == "archived"],
    )
    connection.execute(
        text(
            "INSERT INTO workflow_executions (id, workflow_id, pull_request_id, status,"
            " duration_seconds) VALUES (:id, :w, :p, 'succeeded', :d)"
        ),
        [{"id": i, "w": i % workflows + 1, "p": i % 12 + 1, "d": i * 1.5} for i in range(1, 41)],
    )


def workflow_statuses(engine: Engine) -> dict[int, str]:
    with engine.connect() as connection:
        return dict(connection.execute(text("SELECT id, status FROM workflows")).all())
