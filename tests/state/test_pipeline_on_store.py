"""Whole runs through ``run_trait`` on each backend: first sync, no-op, change and exit."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from traits.config.loader import load_config
from traits.pipeline.run import RunOptions, run_trait
from traits.state.base import StateStore


def calls(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_runs_advance_the_snapshot(store: StateStore, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    wh = project / "wh.duckdb"
    con = duckdb.connect(str(wh))
    con.execute("create table users as select 'u' || i as user_id, i as score from range(50) t(i)")
    con.close()
    (project / "traits.yml").write_text(
        "sources:\n  wh: {type: duckdb, path: wh.duckdb}\n"
        "destinations:\n  out: {type: file, path: out/calls.jsonl}\n"
        "traits:\n  score:\n    kind: user\n    source: wh\n    sql: select user_id, score from users\n    destinations: [out]\n"
    )
    config = load_config(project)
    out = project / "out" / "calls.jsonl"

    first = run_trait(config, store, "score", RunOptions(owner="test")).record
    assert (first.status, first.added, first.sent) == ("ok", 50, 50)
    assert store.snapshot_destinations("score") == ["out"]

    again = run_trait(config, store, "score", RunOptions(owner="test")).record
    assert (again.status, again.added, again.changed, again.unchanged, again.sent) == ("ok", 0, 0, 50, 0)

    con = duckdb.connect(str(wh))
    con.execute("update users set score = score + 1000 where user_id in ('u1', 'u2')")
    con.execute("delete from users where user_id = 'u3'")
    con.close()
    changed = run_trait(config, store, "score", RunOptions(owner="test")).record
    assert (changed.changed, changed.exited, changed.sent) == (2, 1, 3)
    last = calls(out)[-3:]
    assert sorted(c["userId"] for c in last) == ["u1", "u2", "u3"]  # type: ignore[type-var]
    exit_call = next(c for c in last if c["userId"] == "u3")
    assert exit_call["traits"] == {"score": None}

    settled = run_trait(config, store, "score", RunOptions(owner="test")).record
    assert (settled.added, settled.changed, settled.exited, settled.unchanged, settled.sent) == (0, 0, 0, 49, 0)
    assert [r.status for r in store.runs("score")] == ["ok"] * 4

    assert store.reset("score") == ["out"]
    resent = run_trait(config, store, "score", RunOptions(owner="test")).record
    assert (resent.added, resent.sent) == (49, 49)
