"""``autopr-migrate lint`` and ``verify`` as a CI job runs them: a process, an exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autopr_migrate.cli.app import main
from tests.support.alembic_run import PROJECT_ROOT
from tests.support.revisions import ADD_PRIORITY, BLOCKING_UNIQUE, add_revision

CLI = Path(sys.executable).with_name("autopr-migrate")


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )


def test_lint_of_revisions_exits_with_the_level(history) -> None:
    add_revision(history, "aaaa00000120", BLOCKING_UNIQUE)
    result = _cli("lint", "--from", "f19c7e25b0a3")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "unique-constraint-build" in result.stdout and "risk: HIGH" in result.stdout
    quiet = _cli("lint", "--from", "3c1f0e8a2b71", "--to", "8d2e4b7c9a05")
    assert quiet.returncode == 0 and "risk: LOW" in quiet.stdout


@pytest.mark.parametrize(
    ("sql", "code", "level"),
    [
        ("CREATE INDEX CONCURRENTLY ix ON t (a);", 0, "low"),
        ("SET lock_timeout = '2s'; CREATE INDEX ix ON t (a);", 1, "medium"),
        ("ALTER TABLE t RENAME COLUMN a TO b;", 2, "high"),
    ],
)
def test_lint_of_sql_from_stdin_prints_json_for_machines(sql: str, code: int, level: str):
    result = _cli("lint", "--sql", "-", "--format", "json", stdin=sql)
    assert result.returncode == code, result.stderr
    report = json.loads(result.stdout)
    assert report["level"] == level
    assert all(
        {"statement", "rule", "level", "message", "suggestion"} <= f.keys()
        for f in report["findings"]
    )


def test_lint_of_a_file_and_of_something_that_is_not_sql(tmp_path: Path) -> None:
    migration = tmp_path / "0042.sql"
    migration.write_text("ALTER TABLE users DROP COLUMN email;\n")
    result = _cli("lint", "--sql", str(migration))
    assert result.returncode == 2 and "data-loss" in result.stdout
    broken = _cli("lint", "--sql", "-", stdin="ALTER TABEL users;")
    assert broken.returncode == 65 and "not PostgreSQL SQL" in broken.stderr
    assert _cli("lint", "--bogus").returncode == 64


def test_verify_passes_on_the_history(postgresql_admin_url) -> None:
    for args in ([], ["--server", postgresql_admin_url.render_as_string(hide_password=False)]):
        result = _cli("verify", *args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count("ok ") == 4
        assert "ok     declared equivalent texts: 4 earlier text(s)" in result.stdout


def test_verify_fails_on_a_malformed_declaration_before_touching_a_database(history) -> None:
    revision = next(history.glob("*e5c8f2a1d934*.py"))
    revision.write_text(revision.read_text() + "\nequivalent_sha256 = {}\n")
    result = _cli("verify")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "FAILED declared equivalent texts: BadDeclaration: 2025_04_02_080000_e5c8" in (
        result.stdout
    )
    assert "equivalent_sha256 must be bound once" in result.stdout
    assert "up, down, up" not in result.stdout


def test_verify_fails_on_two_heads_and_on_drift(history, monkeypatch) -> None:
    add_revision(history, "aaaa00000090", ADD_PRIORITY)  # a column the models do not have
    drift = _cli("verify")
    assert drift.returncode == 3
    assert "FAILED models match the database at head" in drift.stdout
    add_revision(history, "aaaa00000091", ("pass", "pass"), down="6a0d3f9b2c48")
    heads = _cli("verify")
    assert heads.returncode == 3 and "FAILED single head" in heads.stdout


def _cli_bytes(*args: str, stdin: bytes, env: dict | None = None):
    return subprocess.run(
        [str(CLI), *args], input=stdin, capture_output=True, cwd=PROJECT_ROOT, timeout=120, env=env
    )


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"SELECT 1;\x00DROP TABLE users;", "NUL byte at offset 9"),
        (bytes(range(256)) * 4, "NUL byte"),
        (b"\xff\xfeDROP TABLE users;", "not UTF-8"),
        (b"-- nothing but a comment\n", "no SQL statement"),
        (b"", "no SQL statement"),
    ],
)
def test_lint_refuses_input_that_is_not_sql_text_with_65(tmp_path, capsys, data, words) -> None:
    source = tmp_path / "input.sql"
    source.write_bytes(data)
    assert main(["lint", "--sql", str(source)]) == 65
    captured = capsys.readouterr()
    assert words in captured.err and captured.err.count("\n") == 1 and captured.out == ""


def test_a_nul_on_standard_input_is_refused_too() -> None:
    result = _cli_bytes("lint", "--sql", "-", stdin=b"SELECT 1;\x00DROP TABLE users;")
    assert result.returncode == 65 and b"NUL byte" in result.stderr


def test_statements_that_used_to_crash_or_pass_get_their_level(tmp_path, capsys) -> None:
    for sql, code, rule in (
        ("CLUSTER workflows USING ix_workflows_status;", 2, "table-rewrite"),
        ("DROP SCHEMA legacy CASCADE;", 3, "drop-cascade"),
    ):
        source = tmp_path / "change.sql"
        source.write_text(sql)
        assert main(["lint", "--sql", str(source)]) == code
        assert rule in capsys.readouterr().out


def test_unreadable_files_unknown_revisions_and_internal_errors_have_their_own_codes(
    tmp_path, capsys
):
    assert main(["lint", "--sql", str(tmp_path / "missing.sql")]) == 66
    assert "cannot read" in capsys.readouterr().err
    assert main(["lint", "--from", "ffffffffffff"]) == 64
    assert "not in the history" in capsys.readouterr().err
    assert main(["lint", "--from", "e5c8"]) == 0  # a unique prefix is as good as the id
    assert "risk: LOW" in capsys.readouterr().out
    # An empty variable in a CI script must never lint something else, or nothing, as "low".
    assert main(["lint", "--sql", ""]) == 66
    assert main(["lint", "--to", ""]) == 64
    assert main(["lint", "--from", "head", "--to", "base"]) == 64
    assert main(["lint", "--from", "f19c7e25b0a3", "--to", "e5c8"]) == 64
    assert "runs downwards" in capsys.readouterr().err
    assert main(["lint", "--from", "f19c7e25b0a3"]) == 0  # no new revision: nothing to fear
    broken = tmp_path / "alembic.ini"
    broken.write_text("[alembic]\nscript_location = /nowhere/at/all\n")
    env = {**os.environ, "AUTOPR_ALEMBIC_CONFIG": str(broken)}
    unusable = _cli_bytes("lint", "--from", "e5c8f2a1d934", stdin=b"", env=env)
    assert unusable.returncode == 65 and b"is not usable" in unusable.stderr
    # Prefect validates its settings on import: a bad one must not end in a traceback and 1.
    env = {**os.environ, "PREFECT_API_URL": "http://[::1"}
    crashed = _cli_bytes("lint", "--sql", "-", stdin=b"SELECT 1;", env=env)
    assert crashed.returncode == 70, crashed.stderr
    assert crashed.stderr.startswith(b"error: autopr-migrate could not start")
    assert crashed.stderr.count(b"\n") == 1 and b"Traceback" not in crashed.stderr
