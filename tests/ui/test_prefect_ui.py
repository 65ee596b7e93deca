"""A real `prefect server start`: healthy, serving the UI, and approving a run through the UI.

The browser is Debian's chromium driven by Playwright (never a downloaded browser); the
selectors are the ones the two Prefect UIs render (see the UI notes in docs/approval.md).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from autopr.config import Settings
from autopr.health import create_app
from tests.support.alembic_run import PROJECT_ROOT, revision_of, upgrade
from tests.support.revisions import ADD_PRIORITY, add_revision
from tests.support.seed import seed
from tests.support.servers import serve

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_UI_API_URL": f"{base}/api",
        "PREFECT_API_URL": f"{base}/api",
    }
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/api/health", timeout=2).json() is True:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            assert server.poll() is None, (home / "server.log").read_text()
            assert time.monotonic() < deadline, "prefect server start did not become healthy"
            time.sleep(0.5)
        yield base, env
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_server_is_healthy_and_serves_the_ui(prefect_server) -> None:
    base, _ = prefect_server
    assert httpx.get(f"{base}/api/health").json() is True
    for page in ("/", "/v2/"):
        response = httpx.get(f"{base}{page}", follow_redirects=True)
        assert response.status_code == 200 and "<html" in response.text.lower()
    settings = httpx.get(f"{base}/ui-settings").json()
    assert settings["api_url"] == f"{base}/api"  # the port reached the UI through the environment


@pytest.mark.long
def test_an_operator_approves_a_migration_in_the_ui(prefect_server, sqlite_url, history, tmp_path):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "install Debian's chromium (apt-get install chromium); .ci/run does"
    base, env = prefect_server
    from autopr.database import make_engine

    engine = make_engine(sqlite_url)
    upgrade(engine, "head")
    with engine.begin() as connection:
        seed(connection)
    goal = add_revision(history, "aaaa000000d0", ADD_PRIORITY, message="add workflows.priority")
    app = create_app(Settings(database_url=sqlite_url, health_timeout=2))
    with serve(app) as health:
        run_env = {
            **env,
            "AUTOPR_DB_UI_URL": str(sqlite_url),
            "AUTOPR_DB_UI_HEALTH_URL": f"{health}/health",
            "AUTOPR_DB_UI_BACKUP_DIR": str(tmp_path / "backups"),
            "AUTOPR_ALEMBIC_CONFIG": os.environ["AUTOPR_ALEMBIC_CONFIG"],
        }
        policy = {
            "approval": {"mode": "always", "poll_interval_seconds": 1},
            "probe": {"consecutive_successes": 2, "interval_seconds": 0.2},
        }
        script = (
            "import json, sys; from autopr_migrate.flows.migrate import migrate; "
            "s = migrate(target='ui', requested_by='developer', "
            f"policy=json.loads({json.dumps(json.dumps(policy))}), return_state=True); "
            "sys.exit(0 if s.is_completed() else 1)"
        )
        flow = subprocess.Popen(
            [sys.executable, "-c", script],
            env=run_env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        run_id = _paused_run(base)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/v2/runs/flow-run/{run_id}")
            page.get_by_role("button", name="Open menu").first.click()
            page.get_by_role("menuitem", name="Resume").click()
            dialog = page.get_by_role("dialog", name="Resume Flow Run")
            dialog.locator("strong", has_text="Risk: LOW").wait_for(timeout=20_000)
            text = dialog.inner_text()
            assert goal in text and "add workflows.priority" in text
            assert "ADD COLUMN priority" in dialog.locator("pre code").first.inner_text()
            page.screenshot(path=str(tmp_path / "resume-dialog.png"))  # docs/ has a copy
            dialog.get_by_role("button", name="Select Decision").click()
            page.get_by_role("option", name="approve", exact=True).click()
            dialog.get_by_label("Approver").fill("ui-operator")
            dialog.get_by_label("Reason").fill("approved in the UI")
            dialog.get_by_role("button", name="Resume", exact=True).click()
            page.get_by_text("Flow run resumed").wait_for(timeout=20_000)
            browser.close()
        output, _ = flow.communicate(timeout=120)
    app.state.engine.dispose()
    assert flow.returncode == 0, output
    assert revision_of(engine) == goal
    state = httpx.get(f"{base}/api/flow_runs/{run_id}").json()["state"]
    assert state["type"] == "COMPLETED"


def _paused_run(base: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = httpx.post(
            f"{base}/api/flow_runs/filter",
            json={"flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}}},
        ).json()
        if runs:
            return runs[0]["id"]
        time.sleep(0.5)
    raise AssertionError("the migration did not pause")
