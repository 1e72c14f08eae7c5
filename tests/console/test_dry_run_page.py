"""A dry run kept in history (`traits run --dry-run --record`) shows on its run page with the calls it would send."""

from __future__ import annotations

import json

import httpx

from tests.conftest import Project


def test_a_kept_dry_run_shows_its_calls_and_changed_nothing(duck_project: Project) -> None:
    project = duck_project
    project.sql("create table people as select 'u' || g as id, g as n from range(3) t(g)")
    project.write("  t:\n    kind: user\n    source: wh\n    sql: select id as user_id, n from people\n    destinations: [out]\n")
    assert project.cli("run", "t", "--record").exit_code == 2  # --record goes with --dry-run
    result = project.cli("run", "t", "--dry-run", "--record", "--json")
    assert result.exit_code == 0, result.stderr
    run_id = json.loads(result.stdout)["runs"][0]["run_id"]
    assert project.calls() == []
    assert project.state_files() == {}
    history = json.loads(project.cli("history", "--json").stdout)["runs"]
    assert [(r["run_id"], r["dry_run"]) for r in history] == [(run_id, True)]
    assert {c["userId"] for c in history[0]["planned_calls"]["out"]} == {"u0", "u1", "u2"}

    from traits.cli.cmd_console import ReloadingConfig
    from traits.console.serve import AppServer, console_app

    server = AppServer(console_app(ReloadingConfig(project.root), "127.0.0.1"), "127.0.0.1", 0)
    server.start()
    try:
        data = httpx.get(f"http://{server.address}/api/runs/{run_id}", timeout=30).json()
        assert data["dry_run"] is True
        assert sorted(c["call"]["userId"] for c in data["dry_run_calls"]) == ["u0", "u1", "u2"]
        page = httpx.get(f"http://{server.address}/runs/{run_id}", timeout=30).text
        assert 'id="dry-run-calls"' in page
        assert "&#34;userId&#34;: &#34;u1&#34;" in page or '"userId": "u1"' in page
    finally:
        server.stop()
    # and a real run afterwards sends everything: the dry run committed nothing
    assert project.run_json("t")[1]["runs"][0]["sent"] == 3
