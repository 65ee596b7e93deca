"""Each safe operation gives the schema its naive twin gives, survives a kill after any of its
sub-steps (the revision re-run completes), renders offline, and does the plain thing on SQLite."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading

import pytest
from sqlalchemy import URL, create_engine, inspect, text

from autopr_migrate.analysis.lint import lint_sql
from autopr_migrate.ops.runner import CRASH_AFTER_ENV
from tests.ops.conftest import ROWS, Shop
from tests.support.alembic_run import PROJECT_ROOT
from tests.support.databases import schema_only

# name: (the safe call, its naive twin, the sub-steps a kill may follow)
OPERATIONS = {
    "create_index": (
        'safe.create_index("ix_orders_note", "orders", ["note"])',
        'op.create_index("ix_orders_note", "orders", ["note"])',
        ["build"],
    ),
    "add_foreign_key": (
        'safe.add_foreign_key("fk_orders_customer", "orders", "customers", ["customer_id"], '
        '["id"], ondelete="cascade")',
        'op.create_foreign_key("fk_orders_customer", "orders", "customers", ["customer_id"], '
        '["id"], ondelete="CASCADE")',
        ["add not valid", "validate"],
    ),
    "add_check": (
        'safe.add_check("ck_orders_note", "orders", "length(note) < 100")',
        'op.create_check_constraint("ck_orders_note", "orders", "length(note) < 100")',
        ["add not valid", "validate"],
    ),
    "set_not_null": (
        'safe.set_not_null("orders", "note")',
        'op.alter_column("orders", "note", nullable=False)',
        ["add not valid", "validate", "set not null", "drop check"],
    ),
    "add_unique": (
        'safe.add_unique("uq_orders_note", "orders", ["note"])',
        'op.create_unique_constraint("uq_orders_note", "orders", ["note"])',
        ["build", "attach"],
    ),
    "add_column": (
        'safe.add_column("orders", sa.Column("urgent", sa.Boolean(), nullable=False, '
        "server_default=sa.false()))",
        'op.add_column("orders", sa.Column("urgent", sa.Boolean(), nullable=False, '
        "server_default=sa.false()))",
        ["add"],
    ),
    "backfill": (
        'safe.backfill("orders", "note = note || \'!\'", batch_size=700)',
        "op.execute(\"UPDATE orders SET note = note || '!'\")",
        ["checkpoint table", "batch"],
    ),
}


def _schema(shop) -> str:
    return schema_only(shop.url)


def _ok(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_killed_after_any_sub_step_the_rerun_completes_with_the_naive_schema(name, new_shop):
    safe_call, naive_call, steps = OPERATIONS[name]
    naive = new_shop()
    _ok(naive.upgrade(naive_call))
    expected = _schema(naive)
    for step in steps:
        shop = new_shop()
        killed = shop.upgrade(safe_call, env={CRASH_AFTER_ENV: f"{name}:{step}"})
        assert killed.returncode == -9, (step, killed.stderr[-1500:])
        _ok(shop.upgrade(safe_call))
        assert _schema(shop) == expected, step
    if name == "backfill":  # every row updated exactly once, across the kill and the re-run
        assert shop.execute("SELECT count(*) FROM orders WHERE note LIKE '%!'")[0][0] == ROWS
        assert shop.execute("SELECT count(*) FROM orders WHERE note LIKE '%!!'")[0][0] == 0


def test_an_invalid_leftover_of_a_failed_concurrent_build_is_dropped_and_built_again(new_shop):
    shop = new_shop()
    shop.execute("UPDATE orders SET note = 'same' WHERE id <= 2")
    valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('ix_note')"
    # Its own failed build takes its INVALID unique index away: it would refuse writes.
    failed = shop.upgrade('safe.create_index("ix_note", "orders", ["note"], unique=True)')
    assert failed.returncode != 0 and "could not create unique index" in failed.stderr
    assert shop.execute(valid) == []
    # A build killed half-way leaves one behind (here: a plain build that failed).
    engine = create_engine(shop.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection, pytest.raises(Exception, match="could not create"):
        connection.exec_driver_sql("CREATE UNIQUE INDEX CONCURRENTLY ix_note ON orders (note)")
    engine.dispose()
    assert shop.execute(valid) == [(False,)]
    shop.execute("UPDATE orders SET note = 'n' || id WHERE id <= 2")
    _ok(shop.upgrade('safe.create_index("ix_note", "orders", ["note"], unique=True)'))
    assert shop.execute(valid) == [(True,)]


def test_offline_the_safe_statements_are_rendered_in_autocommit_blocks(new_shop):
    shop = new_shop()
    shop.write(
        "\n".join(
            OPERATIONS[name][0] for name in ("create_index", "add_foreign_key", "set_not_null")
        )
        + "\n"
        + OPERATIONS["backfill"][0]
    )
    rendered = shop.alembic("upgrade", "--sql", "head")
    _ok(rendered)
    sql = rendered.stdout
    assert "CREATE INDEX CONCURRENTLY ix_orders_note ON orders (note)" in sql
    assert re.search(r"ADD CONSTRAINT fk_orders_customer FOREIGN KEY .* NOT VALID", sql)
    assert "VALIDATE CONSTRAINT fk_orders_customer" in sql
    assert "CHECK (note IS NOT NULL) NOT VALID" in sql and "SET NOT NULL" in sql
    assert "-- safe.backfill (whole)\n-- online: in batches of 700 by id" in sql
    assert "UPDATE orders SET note = note || '!';" in sql
    assert sql.count("COMMIT;") >= 4  # each operation outside the revision's transaction


def test_on_sqlite_each_operation_is_the_plain_one(tmp_path):
    url = URL.create("sqlite", database=str(tmp_path / "shop.db"))
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE customers (id integer PRIMARY KEY, name text)"))
        connection.execute(
            text("CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer, note text)")
        )
        connection.execute(text("INSERT INTO customers VALUES (1, 'c1')"))
        connection.execute(
            text("INSERT INTO orders VALUES (:id, 1, :note)"),
            [{"id": n, "note": f"n{n}"} for n in range(1, 51)],
        )
    shop = Shop(url, tmp_path / "project")
    _ok(shop.upgrade("\n".join(OPERATIONS[name][0] for name in sorted(OPERATIONS))))
    columns = {c["name"]: c for c in inspect(engine).get_columns("orders")}
    assert columns["note"]["nullable"] is False and "urgent" in columns
    assert "ix_orders_note" in {i["name"] for i in inspect(engine).get_indexes("orders")}
    assert [fk["name"] for fk in inspect(engine).get_foreign_keys("orders")] == [
        "fk_orders_customer"
    ]
    with engine.connect() as connection:
        changed = connection.execute(text("SELECT count(*) FROM orders WHERE note LIKE '%!'"))
        assert changed.scalar() == 50
    engine.dispose()


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        (
            'sa.Column("token", sa.Text(), server_default=sa.text("gen_random_uuid()::text"))',
            "is volatile",
        ),
        ('sa.Column("seq", sa.BigInteger(), sa.Identity())', "identity or generated"),
        ('sa.Column("code", sa.Text(), nullable=False)', "NOT NULL without a default"),
    ],
)
def test_a_column_that_would_rewrite_the_table_is_refused_with_the_safe_way(
    column, reason, new_shop
):
    shop = new_shop()
    refused = shop.upgrade(f'safe.add_column("orders", {column})')
    assert refused.returncode != 0 and reason in refused.stderr, refused.stderr[-800:]
    assert "safe.backfill" in refused.stderr
    assert (
        shop.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders'")[
            0
        ][0]
        == 3
    )


def test_the_lint_reads_what_the_safe_operations_render_as_safe(new_shop):
    """Their statements are the patterns the lint's advice names: nothing above low."""
    shop = new_shop()
    shop.write("\n".join(OPERATIONS[name][0] for name in sorted(OPERATIONS)))
    rendered = shop.alembic("upgrade", "--sql", "head")
    _ok(rendered)
    report = lint_sql(rendered.stdout, flow_sets_timeouts=True)
    assert report.level == "low", [(f.rule, f.message) for f in report.findings]
    assert "-- safe.add_unique (attach)" in rendered.stdout  # each sub-step says whose it is
    marked = [s for s in report.statements if s.safe_operation]
    assert {s.safe_operation for s in marked} >= {"safe.create_index", "safe.set_not_null"}
    assert not [
        f
        for f in report.findings
        if "use safe." in (f.suggestion or "")
        or f.rule in ("non-transactional", "unbatched-backfill")
    ]
    by_hand = lint_sql("CREATE INDEX CONCURRENTLY ix ON orders (note);", flow_sets_timeouts=True)
    assert [f.rule for f in by_hand.findings] == ["non-transactional"]
    naive = lint_sql(
        "CREATE INDEX ix ON orders (note); ALTER TABLE orders ALTER COLUMN note SET NOT NULL;",
        flow_sets_timeouts=True,
    )
    assert {f.suggestion.split(" (")[0] for f in naive.findings} >= {
        "use safe.create_index",
        "use safe.set_not_null or safe.add_check",
    }


AUTOGENERATE_ENV_PY = """
import os

import sqlalchemy as sa
from alembic import context
from sqlalchemy import create_engine, pool

from autopr_migrate.ops.autogenerate import safe_operations

metadata = sa.MetaData()
sa.Table("customers", metadata, sa.Column("id", sa.BigInteger, primary_key=True),
         sa.Column("name", sa.Text))
orders = sa.Table("orders", metadata, sa.Column("id", sa.BigInteger, primary_key=True),
                  sa.Column("customer_id", sa.BigInteger), sa.Column("note", sa.Text),
                  sa.Index("ix_orders_note", "note"))
sa.Index("ix_orders_recent", orders.c.customer_id.desc(), postgresql_where=orders.c.note == "x")
sa.Index("ix_orders_lower", sa.func.lower(orders.c.note), postgresql_using="hash")
invoices = sa.Table("invoices", metadata, sa.Column("id", sa.BigInteger, primary_key=True),
                    sa.Column("total", sa.Integer), sa.Index("ix_invoices_total", "total"))

engine = create_engine(os.environ["SHOP_URL"], poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata,
                      process_revision_directives=safe_operations)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
"""


def test_autogenerate_writes_the_safe_index_operations_for_tables_that_exist(new_shop):
    shop = new_shop()
    (shop.directory / "env.py").write_text(AUTOGENERATE_ENV_PY)
    shutil.copy(PROJECT_ROOT / "alembic" / "script.py.mako", shop.directory)
    _ok(shop.alembic("revision", "--autogenerate", "-m", "indexes", "--rev-id", "a1"))
    (written,) = (shop.directory / "versions").glob("a1_*.py")
    source = written.read_text()
    assert "from autopr_migrate.ops import safe" in source
    assert "prefer the safe operations (docs/safe-operations.md)" in source  # the template
    assert "safe.create_index('ix_orders_note', 'orders', ['note'])" in source
    assert "safe.drop_index('ix_orders_note')" in source  # the downgrade
    assert "op.create_index('ix_invoices_total', 'invoices', ['total']" in source  # a new table
    assert (
        "safe.create_index('ix_orders_recent', 'orders', ['customer_id DESC'], "
        "where=\"note = 'x'\")" in source
    )
    assert "safe.create_index('ix_orders_lower', 'orders', ['lower(note)'], using='hash')" in source
    _ok(shop.alembic("upgrade", "head"))
    valid = "SELECT bool_and(indisvalid), count(*) FROM pg_index WHERE indexrelid::regclass::text"
    assert shop.execute(
        f"{valid} IN ('ix_orders_note', 'ix_orders_recent', 'ix_orders_lower')"
    ) == [(True, 3)]


def test_a_finished_backfill_is_not_repeated_when_the_revision_dies_later(new_shop):
    """Its checkpoint goes only with the revision's stamp: after a downgrade it runs again."""
    shop = new_shop()
    body = OPERATIONS["backfill"][0] + "\n" + OPERATIONS["add_check"][0]
    killed = shop.upgrade(body, env={CRASH_AFTER_ENV: "add_check:add not valid"})
    assert killed.returncode == -9
    _ok(shop.upgrade(body))
    assert shop.execute("SELECT count(*) FROM orders WHERE note LIKE '%!!'") == [(0,)]
    assert shop.execute("SELECT count(*) FROM orders WHERE note LIKE '%!'") == [(ROWS,)]
    assert shop.execute("SELECT to_regclass('autopr_backfill_checkpoint')") == [(None,)]
    shop.execute("DELETE FROM alembic_version")  # as after a downgrade of the revision
    shop.execute("ALTER TABLE orders DROP CONSTRAINT ck_orders_note")
    _ok(shop.upgrade(body))
    assert shop.execute("SELECT count(*) FROM orders WHERE note LIKE '%!!'") == [(ROWS,)]


def test_conditions_with_percent_signs_and_colons_run_as_written(new_shop):
    shop = new_shop()
    body = (
        'safe.add_check("ck_note", "orders", "note NOT LIKE \'%:zz%\'")\n'
        'safe.create_index("ix_n", "orders", ["note"], where="note LIKE \'n%\'")\n'
        'safe.backfill("orders", "note = note || \' :x%\'", where="note <> \'a :b\'")'
    )
    _ok(shop.upgrade(body))
    ends_so = "SELECT count(*) FROM orders WHERE right(note, 4) = ' ' || chr(58) || 'x' || chr(37)"
    assert shop.execute(ends_so) == [(ROWS,)]
    rendered = shop.alembic("upgrade", "--sql", "head")
    _ok(rendered)
    assert "CHECK (note NOT LIKE '%:zz%') NOT VALID" in rendered.stdout


def test_a_validation_that_fails_takes_its_constraint_away(new_shop):
    """The plain operation would roll back whole: nothing of it may keep refusing writes."""
    shop = new_shop()
    shop.execute("UPDATE orders SET note = NULL WHERE id = 1")
    failed = shop.upgrade(OPERATIONS["set_not_null"][0])
    assert failed.returncode != 0 and "violated by some row" in failed.stderr
    assert shop.execute(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'c'"
    ) == [(0,)]
    shop.execute("INSERT INTO orders VALUES (999999, 1, NULL)")  # still allowed


def test_a_build_that_meets_a_lock_timeout_is_built_again(new_shop):
    """A concurrent build waits for older transactions; timed out, it leaves an INVALID index,
    and the retry drops it and builds again."""
    shop = new_shop()
    engine = create_engine(shop.url)
    holder = engine.connect()
    holder.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ")
    holder.exec_driver_sql("SELECT count(*) FROM customers")  # an old snapshot, elsewhere
    ends = threading.Timer(1.5, holder.rollback)
    ends.start()
    try:
        done = shop.upgrade(
            "safe.configure(long_lock_timeout_ms=300, backoff_seconds=0.4)\n"
            + OPERATIONS["create_index"][0]
        )
    finally:
        ends.join()
        holder.close()
        engine.dispose()
    _ok(done)
    valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_orders_note'::regclass"
    assert shop.execute(valid) == [(True,)]


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        (
            'sa.Column("customer2", sa.BigInteger(), sa.ForeignKey("customers.id"))',
            "safe.add_foreign_key",
        ),
        ('sa.Column("note", sa.Boolean())', "exists already as text, not BOOLEAN"),
    ],
)
def test_a_column_with_its_own_constraint_or_another_type_is_refused(column, reason, new_shop):
    shop = new_shop()
    refused = shop.upgrade(f'safe.add_column("orders", {column})')
    assert refused.returncode != 0 and reason in refused.stderr, refused.stderr[-600:]


def test_a_recording_backfill_writes_one_record_per_row_it_changed_across_a_kill(new_shop):
    """Each batch updates and records in one statement: killed after a batch and run again,
    the records hold each changed row's value before its update, once."""
    shop = new_shop()
    shop.execute("CREATE TABLE note_changes (order_id bigint, old_note text, why text)")
    body = (
        'safe.backfill("orders", {"note": "upper(note)"}, where="note LIKE \'n1%\'", '
        'batch_size=700, record_into="note_changes", '
        'record={"order_id": "id", "old_note": "note", "why": "\'upper: yes\'"})'
    )
    killed = shop.upgrade(body, env={CRASH_AFTER_ENV: "backfill:batch"})
    assert killed.returncode == -9, killed.stderr[-800:]
    first = shop.execute("SELECT count(*) FROM note_changes")[0][0]
    assert 0 < first == shop.execute("SELECT count(*) FROM orders WHERE note LIKE 'N1%'")[0][0]
    _ok(shop.upgrade(body))
    changed = shop.execute("SELECT id, note FROM orders WHERE note LIKE 'N1%' ORDER BY id")
    records = shop.execute("SELECT order_id, old_note, why FROM note_changes ORDER BY order_id")
    assert len(changed) == 1111 and len(records) == len(changed)  # n1, n10-n19, n100-n199, ...
    assert records == [(i, note.lower(), "upper: yes") for i, note in changed]
    rendered = shop.alembic("upgrade", "--sql", "head")
    _ok(rendered)
    whole = rendered.stdout[rendered.stdout.index("-- safe.backfill (whole)") :]
    assert "FOR NO KEY UPDATE OF orders" in whole  # one statement: what it locks it records
    assert "INSERT INTO note_changes (order_id, old_note, why) SELECT _autopr_0" in whole
    refused = new_shop().upgrade('safe.backfill("orders", "note = 1", record_into="changes")')
    assert refused.returncode != 0 and "give record_into (a table" in refused.stderr


def test_a_recording_backfill_pages_any_key_type_in_any_schema_under_any_table_name(new_shop):
    """A uuid key, a schema, a table named like the statement's own parts, a condition that
    names the table: the batches go through it once."""
    shop = new_shop()
    shop.execute(
        "CREATE SCHEMA app; CREATE TABLE app.batch (id uuid PRIMARY KEY DEFAULT "
        "gen_random_uuid(), note text, k int, upper int); CREATE TABLE app.changes (id uuid, "
        "was text); INSERT INTO app.batch (note, k, upper) SELECT 'n' || g, g, g FROM "
        "generate_series(1, 2500) g"
    )
    body = (
        'safe.backfill("batch", {"note": "note || \'!\'"}, where="batch.k % 2 = 0", '
        'schema="app", batch_size=1000, record_into="changes", record={"id": "id", "was": "note"})'
    )
    _ok(shop.upgrade(body))
    assert shop.execute("SELECT count(*) FROM app.batch WHERE note LIKE '%!'") == [(1250,)]
    assert shop.execute(
        "SELECT count(*) FROM app.changes c JOIN app.batch b USING (id) "
        "WHERE b.note = c.was || '!' AND b.k % 2 = 0"
    ) == [(1250,)]
    assert shop.execute("SELECT count(*) FROM app.changes") == [(1250,)]
