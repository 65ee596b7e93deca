"""The database password never appears in a log line, artifact, event, message or argv."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

import pytest

from autopr.config import Settings
from autopr.health import create_app
from tests.flows.conftest import fast_policy
from tests.flows.helpers import at_head_with_rows, ledger_rows
from tests.support.paused import migrate_approving
from tests.support.prefect_api import run_artifacts, run_events, run_logs
from tests.support.processes import ProcessWatch
from tests.support.revisions import ADD_PRIORITY, FAILING_DOWNGRADE, add_revision
from tests.support.servers import serve

# Trust authentication accepts any password, so the runs work; the second has every character
# a URL gives meaning to (percent-encoded in the URL, as the docs ask).
PASSWORDS = ["Zq-pass-9f83", "Zq p@ss:w/rd?#%=9f"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("password", PASSWORDS, ids=["plain", "url-characters"])
def test_password_appears_nowhere_in_a_run(migration_target, history, monkeypatch, password):
    url = migration_target.url.set(password=password)
    monkeypatch.setenv("AUTOPR_DB_APP_URL", url.render_as_string(hide_password=False))
    app = create_app(Settings(database_url=url, health_timeout=2))
    engine = at_head_with_rows(migration_target.engine())
    with serve(app) as base_url, ProcessWatch() as processes:
        monkeypatch.setenv("AUTOPR_DB_APP_HEALTH_URL", f"{base_url}/health")
        first = add_revision(history, "aaaa00000030", ADD_PRIORITY)
        succeeded = migrate_approving(target="app", policy=fast_policy())
        add_revision(history, "aaaa00000031", FAILING_DOWNGRADE, down=first)
        restored = migrate_approving(target="app", policy=fast_policy())
    app.state.engine.dispose()
    assert succeeded.is_completed() and restored.is_failed()
    assert "restored backup" in restored.message

    seen: list[str] = []
    for state, last_event in (
        (succeeded, "autopr.migration.succeeded"),
        (restored, "autopr.migration.restored"),
    ):
        run_id = state.state_details.flow_run_id
        seen += [state.message or "", *run_logs(run_id)]
        seen += run_artifacts(run_id).values()
        events = run_events(run_id, "autopr.database.app", expect=last_event)
        assert last_event in events
        seen.append(json.dumps(events))
    seen += [json.dumps(row, default=str) for row in ledger_rows(engine)]
    seen += [p.read_text() for p in migration_target.backup_dir.glob("*.json")]
    assert {"pg_dump", "pg_restore"} <= processes.tools_seen()
    seen += processes.command_lines
    seen += processes.tool_environments.values()
    forms = {password, quote(password, safe=""), quote_plus(password)}
    leaks = [text for text in seen if any(form in text for form in forms)]
    assert leaks == []
    assert any("***" in text for text in seen)  # the URL was shown, masked
