"""The daemon's runs of a dbt-model trait remember the model build they read, for --if-changed."""

from __future__ import annotations

import json

import pytest

from traits.config.dbt import state_key

from .conftest import Project, wait_for

pytestmark = pytest.mark.slow
BUILT_AT = "2026-12-01T08:00:00.123456Z"


def test_daemon_run_records_the_dbt_build(project: Project, daemons) -> None:
    import duckdb

    con = duckdb.connect(str(project.root / "demo.duckdb"))
    con.execute("create schema marts; create table marts.customer_traits as select user_id, plan from users")
    con.close()
    target = project.root / "analytics" / "target"
    target.mkdir(parents=True)
    node = {"resource_type": "model", "name": "customer_traits", "package_name": "analytics", "unique_id": "model.analytics.customer_traits",
            "database": "demo", "schema": "marts", "alias": "customer_traits"}
    (target / "manifest.json").write_text(json.dumps({"nodes": {node["unique_id"]: node}}))
    result = {"unique_id": node["unique_id"], "status": "success", "timing": [{"name": "execute", "completed_at": BUILT_AT}]}
    (target / "run_results.json").write_text(json.dumps({"args": {}, "results": [result]}))
    base = (project.root / "base.yml").read_text().replace("settings: {jitter: 0s, concurrency: 3}",
                                                            "settings: {jitter: 0s, concurrency: 3, dbt: {project_dir: analytics}}")
    (project.root / "base.yml").write_text(base)
    project.traits("  modeled:\n    kind: user\n    source: demo\n    model: customer_traits\n    destinations: [out_a]\n    schedule: every 2s\n")
    daemon = daemons()
    wait_for(lambda: any(r.status == "ok" for r in project.finished("modeled")), "an ok run of the model trait", 40)
    assert daemon.stop() == 0
    store = project.state()
    try:
        assert store.get_value(state_key("modeled")) == BUILT_AT
    finally:
        store.close()
    assert project.sent_ids("a.jsonl"), "the trait read the model's relation and sent its rows"
