"""Input an operator who means harm (or is just tired) can give, class by class.

Each case: a one-line error that says what to do, the run's final state or the command's exit
code, the target's revision and table checksums unchanged, and no secret anywhere.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from autopr.config import Settings
from autopr.health import create_app
from autopr_migrate.cli.app import main
from autopr_migrate.errors import ConfigurationError, ExitCode
from autopr_migrate.flows.migrate import migrate
from autopr_migrate.flows.rollback import rollback
from autopr_migrate.operations.rules import refusal
from autopr_migrate.orchestration.setup import discover_targets
from autopr_migrate.policy.parameters import ApprovalPolicy
from autopr_migrate.targets.targets import validate_name
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, checksums, ledger_rows
from tests.support.alembic_run import PROJECT_ROOT, alembic_cli, revision_of
from tests.support.prefect_api import all_logs
from tests.support.revisions import ADD_PRIORITY, add_revision

WINDOW = {"cron": "0 2 * * *", "duration_minutes": 60}


@pytest.fixture
def ready(migration_target, history):
    """The target at head with rows, one revision pending, and what must not change."""
    engine = at_head_with_rows(migration_target.engine())
    add_revision(history, "aaaa00000140", ADD_PRIORITY)
    return engine, (revision_of(engine), checksums(engine))


def _assert_refused_unchanged(state, engine, before, *words: str) -> None:
    assert state.is_failed()
    assert "\n" not in state.message and len(state.message) < 600, state.message
    for word in words:
        assert word in state.message, state.message
    assert (revision_of(engine), checksums(engine)) == before
    assert ledger_rows(engine) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("parameters", "words"),
    [
        ({"revision": "a" * 400_000}, ["revision is 400,000 characters long; the limit is 64"]),
        ({"target": "t" * 1_000}, ["target is 1,000 characters long; the limit is 40"]),
        ({"requested_by": "r" * 300}, ["requested_by is 300 characters long; the limit is 100"]),
        ({"revision": "head\x00DROP"}, ["NUL character"]),
        ({"requested_by": "ops\nFAKE LOG LINE"}, ["line break"]),
        ({"target": "Prod; DROP"}, ["is not valid", "lowercase letters"]),
        ({"target": "staging-health"}, ["reserved"]),
    ],
)
def test_oversized_or_malformed_parameters_are_refused_before_any_work(
    ready, parameters, words
) -> None:
    engine, before = ready
    state = migrate(
        **{"target": "app", "requested_by": "ops", **parameters},
        policy=fast_policy(),
        return_state=True,
    )
    _assert_refused_unchanged(state, engine, before, *words, "nothing was changed")
    logs = all_logs(state.state_details.flow_run_id, last="Finished in state Failed")
    assert max(len(line) for line in logs) < 1_000
    assert not list(Path(os.environ["AUTOPR_DB_APP_BACKUP_DIR"]).glob("*"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"risk": {"override_reason": "x" * 10_000}}, "override_reason"),
        ({"risk": {"changed_history_reason": "x" * 501}}, "changed_history_reason"),
        ({"window": {"windows": [WINDOW | {"name": "w" * 61}]}}, "name"),
        ({"approval": {"approvers": ["a" * 101]}}, "approvers"),
        ({"risk": {"override_reason": "why\x00not"}}, "override_reason"),
    ],
)
def test_policy_texts_are_bounded_too(ready, policy, field) -> None:
    engine, before = ready
    state = migrate(target="app", requested_by="ops", policy=policy, return_state=True)
    assert state.is_failed() and field in state.message
    assert len(state.message) < 600 and "xxxxxxxxxx" not in state.message
    assert (revision_of(engine), checksums(engine)) == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("mode", ["always", "risky"])
def test_four_eyes_without_a_requester_refuses_to_start(ready, mode) -> None:
    engine, before = ready
    policy = fast_policy(approval={"mode": mode})
    for flow, requester in ((migrate, ""), (rollback, ""), (migrate, "\u200b")):
        state = flow(target="app", policy=policy, requested_by=requester, return_state=True)
        _assert_refused_unchanged(
            state,
            engine,
            before,
            "four eyes",
            "requested_by is empty",
            "-p requested_by=<your name>",
        )


@pytest.mark.parametrize(
    ("approver", "requested_by", "refused"),
    [
        ("OPS", "ops", "four eyes"),
        ("ops\u200b", "ops", "four eyes"),
        (" \uff2f\uff50\uff53 ", "ops", "four eyes"),  # full-width letters
        ("\u2800", "ops", "approver is required"),
        ("mallory", "ops", "not an approver"),
        ("Carol", "ops", None),
    ],
)
def test_names_are_compared_as_they_show(approver, requested_by, refused) -> None:
    policy = ApprovalPolicy(approvers=["carol", "dave"])
    said = refusal(approver, "", policy, requested_by)
    assert (said is None) if refused is None else (refused in said)


def test_approver_and_reason_are_checked_before_anything_is_sent(capsys) -> None:
    cases = [
        (["approve", "some-run", "--as", ""], "approver is required"),
        (["approve", "some-run", "--as", "   "], "approver is required"),
        (["approve", "some-run", "--as", "\u200b\u3164"], "approver is required"),
        (["approve", "some-run", "--as", "ops\u2028forged"], "control character U+2028"),
        (["approve", "some-run", "--as", "o" * 300], "approver is 300 characters long"),
        (["reject", "some-run", "--as", "ops", "--reason", "r" * 5000], "reason is 5,000"),
        (["approve", "some-run", "--as", "ops", "--reason", "a\x00b"], "NUL"),
    ]
    for argv, words in cases:
        assert main(argv) == ExitCode.USAGE
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1 and len(err) < 400, err


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_ambiguous_revision_prefix_names_its_candidates(ready, history) -> None:
    engine, _ = ready
    add_revision(history, "aaaa00000141", ADD_PRIORITY[::-1], down="aaaa00000140")
    before = (revision_of(engine), checksums(engine))
    state = migrate(
        target="app",
        revision="aaaa0000014",
        requested_by="ops",
        policy=fast_policy(),
        return_state=True,
    )
    _assert_refused_unchanged(state, engine, before, "ambiguous", "aaaa00000140, aaaa00000141")
    unknown = migrate(
        target="app", revision="ffff", requested_by="ops", policy=fast_policy(), return_state=True
    )
    _assert_refused_unchanged(unknown, engine, before, "'ffff' is not in the history")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_backup_directory_that_is_a_file_says_so_and_names_the_variable(
    ready, tmp_path, monkeypatch
) -> None:
    engine, before = ready
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    monkeypatch.setenv("AUTOPR_DB_APP_BACKUP_DIR", str(blocker))
    own = migrate(target="app", requested_by="ops", policy=fast_policy(), return_state=True)
    _assert_refused_unchanged(
        own,
        engine,
        before,
        "is a file, not a directory",
        "point AUTOPR_DB_APP_BACKUP_DIR (which set it)",
    )
    monkeypatch.delenv("AUTOPR_DB_APP_BACKUP_DIR")
    monkeypatch.setenv("AUTOPR_BACKUP_DIR", str(tmp_path))
    (tmp_path / "app").write_text("x")
    shared = migrate(target="app", requested_by="ops", policy=fast_policy(), return_state=True)
    _assert_refused_unchanged(
        shared, engine, before, "is a file", "point AUTOPR_BACKUP_DIR (which set it)"
    )
    monkeypatch.setenv("AUTOPR_BACKUP_DIR", str(blocker))  # the root itself is the file
    under = migrate(target="app", requested_by="ops", policy=fast_policy(), return_state=True)
    _assert_refused_unchanged(
        under,
        engine,
        before,
        f"lies under {blocker}, which is a file",
        "point AUTOPR_BACKUP_DIR (which set it)",
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_run_refused_before_its_backup_leaves_the_directory_as_it_was(
    ready, migration_target, monkeypatch
) -> None:
    engine, before = ready
    directory = migration_target.backup_dir
    directory.mkdir(mode=0o755, parents=True)
    directory.chmod(0o755)
    monkeypatch.setenv("AUTOPR_DB_APP_HEALTH_URL", "http://127.0.0.1:9/health")  # nobody there
    state = migrate(target="app", requested_by="ops", policy=fast_policy(), return_state=True)
    _assert_refused_unchanged(state, engine, before, "not healthy before the migration")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    assert list(directory.iterdir()) == []


def test_setup_finds_targets_not_their_health_urls() -> None:
    environ = {
        "AUTOPR_DB_STAGING_URL": "postgresql://db/staging",
        "AUTOPR_DB_STAGING_HEALTH_URL": "http://app/health",
        "AUTOPR_DB_STAGING_BACKUP_DIR": "/backups",
        "AUTOPR_DB_EU_WEST_URL": "postgresql://db/eu",
        "AUTOPR_DB_EU_WEST_HEALTH_URL": "http://eu/health",
    }
    assert discover_targets(environ) == ["eu-west", "staging"]
    with pytest.raises(ConfigurationError, match="reserved"):
        validate_name("staging-health")


# Secrets: a password an operator typed with an unencoded "@" (the parser would split it) or in
# a shape that is not a URL at all, through every way out: the run, the CLI, plain alembic and
# /health. TAIL is what a driver would quote back as a host name.
TAIL = "Tail-7x9q"
UNENCODED = f"postgresql://postgres:Secret-Head@{TAIL}@127.0.0.1:5432/autopr"
NO_COLON = f"postgres//postgres:Secret-Head{TAIL}@127.0.0.1:5432/autopr"


def _leaks(*texts: str) -> list[str]:
    return [t for t in texts if "Secret-Head" in t or TAIL in t]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("raw", [UNENCODED, NO_COLON], ids=["unencoded-at", "no-colon"])
def test_a_password_in_a_bad_url_leaks_nowhere(ready, monkeypatch, raw) -> None:
    monkeypatch.setenv("AUTOPR_DB_APP_URL", raw)
    state = migrate(target="app", requested_by="ops", policy=fast_policy(), return_state=True)
    assert state.is_failed() and "nothing was changed" in state.message
    logs = all_logs(state.state_details.flow_run_id, last="Finished in state Failed")
    env = {**os.environ, "DATABASE_URL": raw, "AUTOPR_DB_APP_URL": raw}
    cli = subprocess.run(
        [str(Path(sys.executable).with_name("autopr-migrate")), "status", "--target", "app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == ExitCode.USAGE and cli.stderr.count("\n") == 1, cli.stderr
    plain = alembic_cli("current", url=raw)
    health = subprocess.run(
        [sys.executable, "-m", "autopr.health", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert plain.returncode != 0 and health.returncode == 2
    assert "percent-encode" in state.message + cli.stderr
    assert (
        _leaks(
            state.message,
            *logs,
            cli.stdout,
            cli.stderr,
            plain.stdout,
            plain.stderr,
            health.stdout,
            health.stderr,
        )
        == []
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_health_answers_with_a_fixed_reason_never_the_drivers_words(migration_target, caplog):
    password = "Zq-health-77"
    url = migration_target.url.set(password=password, host="127.0.0.1", port=1)
    app = create_app(Settings(database_url=url, health_timeout=2))

    async def probe() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get("/health")

    import asyncio

    response = asyncio.run(probe())
    app.state.engine.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["reason"] == "database unreachable" and "detail" not in body
    assert password not in response.text and password not in caplog.text
    assert "Connection refused" in caplog.text  # the detail went to the server log


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_password_with_url_characters_leaks_nowhere_when_the_database_is_down(
    migration_target, monkeypatch
) -> None:
    password = "Zq p@ss:w/rd?#%=down"
    raw = f"postgresql://postgres:{quote(password, safe='')}@127.0.0.1:1/autopr"
    monkeypatch.setenv("AUTOPR_DB_APP_URL", raw)
    state = migrate(target="app", requested_by="ops", policy=fast_policy(), return_state=True)
    assert state.is_failed() and "cannot connect" in state.message
    logs = all_logs(state.state_details.flow_run_id, last="Finished in state Failed")
    env = {**os.environ, "DATABASE_URL": raw}
    cli = subprocess.run(
        [str(Path(sys.executable).with_name("autopr-migrate")), "status", "--target", "app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    plain = alembic_cli("current", url=raw)
    assert cli.returncode == ExitCode.UNAVAILABLE and plain.returncode != 0
    forms = {password, quote(password, safe=""), "p@ss", "w/rd"}
    outputs = [state.message, *logs, cli.stdout, cli.stderr, plain.stdout, plain.stderr]
    assert [text for text in outputs if any(form in text for form in forms)] == []
    assert "***" in state.message  # the URL was named, masked
