"""A batched backfill: ``UPDATE`` in primary-key order, a batch at a time, resumable.

Each batch is one statement, in its own transaction, that updates the next ``batch_size`` keys
(and, given ``record_into``, inserts a record of each row it changed) and moves the checkpoint
(table ``autopr_backfill_checkpoint``) in the same statement: after a crash the revision,
re-run, goes on after the last finished batch and never updates a finished batch again.
Between batches it pauses; the pause doubles (up to ``max_pause_seconds``) while the
application's queries wait behind the batches or a batch runs longer than
``slow_batch_seconds``, and halves back towards ``pause_seconds`` when they stop. A finished
backfill's checkpoint stays until the transaction that records the revision as applied, which
removes it (and the table once empty): a crash later in the revision does not repeat the
backfill, and an upgrade after a downgrade runs it again. Progress: a log line every few
batches, and ``ops.progress`` listeners (the migrate flow's progress artifact).
"""

from __future__ import annotations

import hashlib
import logging
import time

from alembic import op
from sqlalchemy import text

from autopr_migrate.analysis.model import safe_step_comment
from autopr_migrate.backends.lock_sampler import LockSampler
from autopr_migrate.model import BACKFILL_CHECKPOINT_TABLE
from autopr_migrate.ops import progress, sql
from autopr_migrate.ops.backfill_sql import Change, batch_sql, whole_statements
from autopr_migrate.ops.runner import BATCH, BRIEF, Runner, escape_colons

LOG = logging.getLogger("autopr_migrate.ops")
CHECKPOINT_TABLE = BACKFILL_CHECKPOINT_TABLE
_LOG_EVERY = 20  # batches


def backfill(
    table: str,
    set_: str | dict[str, str],
    *,
    where: str | None = None,
    key: str = "id",
    batch_size: int = 1000,
    name: str | None = None,
    schema: str | None = None,
    record_into: str | None = None,
    record: dict[str, str] | None = None,
    pause_seconds: float = 0.0,
    max_pause_seconds: float = 5.0,
    slow_batch_seconds: float = 1.0,
) -> int:
    """``UPDATE table SET <set_> [WHERE <where>]`` in batches of ``batch_size`` by ``key``
    (unique, not null, orderable: the primary key); the rows updated, by this run.

    ``record_into`` and ``record`` (``{column: expression over the row before its update}``)
    insert a row into ``record_into`` for each row updated, in the batch's own statement: what
    a downgrade needs to undo exactly the rows this changed."""
    if bool(record_into) != bool(record):
        raise ValueError(
            "backfill: give record_into (a table in the same schema) and record (its columns) "
            "together"
        )
    assignments = (
        ", ".join(f"{sql.quote(column)} = {value}" for column, value in set_.items())
        if isinstance(set_, dict)
        else set_
    )
    qualified = sql.qualified(table, schema)
    recording = (sql.qualified(record_into, schema), record) if record_into and record else None
    change = Change(table, qualified, assignments, where, key, recording)
    runner = Runner("backfill")
    if runner.offline or not runner.postgresql:
        # In the revision's transaction: offline the batches cannot be known (they depend on
        # the live table), and SQLite has one writer anyway.
        return _whole(runner, change, batch_size)
    identity = f"{qualified}|{assignments}|{where}|{key}" + (f"|{recording}" if recording else "")
    label = name or hashlib.sha256(identity.encode()).hexdigest()[:16]
    with runner.outside_transaction():
        updated = _in_batches(
            runner,
            label,
            change,
            batch_size,
            (pause_seconds, max_pause_seconds, slow_batch_seconds),
        )
    _forget_once_stamped(label)
    return updated


def _whole(runner: Runner, change: Change, batch_size: int) -> int:
    """The whole backfill in the revision's transaction: rendered offline, run on SQLite."""
    statements = whole_statements(change, postgresql=runner.postgresql)
    if runner.offline:
        online = (
            f"-- online: in batches of {batch_size} by {change.key}, resumable"
            if runner.postgresql
            else "-- on SQLite: whole, online too"
        )
        for statement in statements:
            comment = safe_step_comment("backfill", "whole")
            op.execute(text(escape_colons(f"{comment}\n{online}\n{statement}")))
        return 0
    bind = op.get_bind()
    for statement in statements[:-1]:
        bind.exec_driver_sql(statement)
    return int(bind.exec_driver_sql(statements[-1]).rowcount or 0)


def _forget_once_stamped(label: str) -> None:
    """The finished checkpoint goes in the transaction that records the revision as applied:
    until then, a re-run after a crash later in the revision finds the backfill done; after a
    downgrade, the next upgrade backfills again. The table goes once it is empty."""
    context = op.get_context()
    earlier = context.on_version_apply_callbacks

    def forget(ctx, **_applied) -> None:
        ctx.on_version_apply_callbacks = earlier  # once: for this revision's stamp
        connection = ctx.connection
        connection.execute(
            text(f"DELETE FROM {CHECKPOINT_TABLE} WHERE name = :name"), {"name": label}
        )
        connection.exec_driver_sql(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM {CHECKPOINT_TABLE}) THEN "
            f"DROP TABLE {CHECKPOINT_TABLE}; END IF; END $$"
        )

    context.on_version_apply_callbacks = (*earlier, forget)


def _in_batches(
    runner: Runner,
    label: str,
    change: Change,
    batch_size: int,
    pacing: tuple[float, float, float],
) -> int:
    assert runner.connection is not None
    qualified, key = change.qualified, change.key
    connection = runner.connection
    described = connection.execute(
        text(
            "SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute WHERE "
            "attrelid = to_regclass(:table) AND attname = :key AND NOT attisdropped"
        ),
        {"table": qualified, "key": key},
    ).first()
    if described is None or not described[1]:
        raise ValueError(
            f"backfill: {qualified} has no NOT NULL column {key[:40]!r} to page by: give its "
            f"primary key as key="
        )
    key_type = described[0]
    runner.run(
        "checkpoint table",
        f"CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} (name text PRIMARY KEY, "
        "last_key text, rows_done bigint NOT NULL DEFAULT 0, finished boolean NOT NULL "
        "DEFAULT false, updated_at timestamptz)",
        kind=BRIEF,
    )
    connection.execute(
        text(f"INSERT INTO {CHECKPOINT_TABLE} (name) VALUES (:name) ON CONFLICT DO NOTHING"),
        {"name": label},
    )
    last, done_before, finished = connection.execute(
        text(f"SELECT last_key, rows_done, finished FROM {CHECKPOINT_TABLE} WHERE name = :name"),
        {"name": label},
    ).one()
    if finished:
        LOG.info("backfill %s: done already (%d rows), before a restart", qualified, done_before)
        return 0
    estimate = connection.execute(
        text("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass(:t)"),
        {"t": qualified},
    ).scalar()
    if last is not None:
        LOG.info(
            "backfill %s: resuming after %s=%s (%d rows done before)",
            qualified,
            key,
            last,
            done_before,
        )
    statement = text(batch_sql(change.for_text(), key_type, batch_size))
    pause, max_pause, slow = pacing
    current_pause, updated, batches = pause, 0, 0
    migrating = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    sampled = connection.engine.url.set(drivername="postgresql")  # env.py's may be async
    with LockSampler(sampled, interval=0.1, watched=migrating) as observed:
        while True:
            started, seen = time.monotonic(), len(observed.waits)
            try:
                rows = runner.query("batch", statement, {"name": label, "last": last}, kind=BATCH)
            except Exception:
                LOG.error(
                    "backfill %s stopped after %d rows (up to %s=%s); the finished batches stay "
                    "done: fix the cause and run the upgrade again, which goes on after them, "
                    "or restore the backup",
                    qualified,
                    done_before + updated,
                    key,
                    last,
                )
                raise
            if not rows:
                break
            last, count = rows[0]
            updated += count
            batches += 1
            total = done_before + updated
            progress.report(f"backfill {qualified}", total, max(estimate or 0, total))
            if batches % _LOG_EVERY == 0:
                LOG.info("backfill %s: %d rows updated, up to %s=%s", qualified, total, key, last)
            waited = any(w.behind is not None for w in list(observed.waits.values())[seen:])
            if waited or time.monotonic() - started > slow:
                current_pause = min(max_pause, max(0.1, current_pause * 2))
            else:
                current_pause = max(pause, current_pause / 2)
            time.sleep(current_pause)
    progress.report(f"backfill {qualified}", done_before + updated, done_before + updated)
    connection.execute(
        text(f"UPDATE {CHECKPOINT_TABLE} SET finished = true WHERE name = :name"), {"name": label}
    )
    LOG.info(
        "backfill %s: done, %d rows updated (%d before a restart)",
        qualified,
        done_before + updated,
        done_before,
    )
    return updated
