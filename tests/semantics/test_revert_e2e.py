"""``traits revert`` end to end through the CLI: Postgres warehouse, a local receiver, both
state stores; the receiver ends as it was before the reverted run, also after a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from receiver import Received, Reply

from tests.semantics.conftest import SemanticsProject

TRAIT = """  t:
    kind: user
    source: wh
    sql: select id as user_id, plan, score from people
    destinations: [seg]
    max_exit_ratio: 1
    max_change_ratio: 1
"""


def _before_and_bad_run(p: SemanticsProject, rows: int) -> tuple[str, dict[str, dict[str, Any]]]:
    """Sync a table, then run a bad change: most ids change, some exit, some are added."""
    p.sql(f"create table people as select 'u' || g as id, 'pro' as plan, g as score from generate_series(1, {rows}) g")
    code, out = p.run_json("t")
    assert code == 0, out
    before = p.profiles()
    assert len(before) == rows
    p.sql("update people set plan = 'broken', score = -1 where score % 3 <> 0")
    p.sql("delete from people where score = 3 or score = 6")
    p.sql("insert into people select 'n' || g, 'new', g from generate_series(1, 5) g")
    code, out = p.run_json("t")
    assert code == 0, out
    bad = out["runs"][0]
    assert (bad["added"], bad["exited"]) == (5, 2)
    assert p.profiles() != before
    return str(bad["run_id"]), before


def test_a_revert_takes_the_receiver_back_to_before_the_run(semantics: SemanticsProject) -> None:
    p = semantics
    p.configure(TRAIT)
    bad, before = _before_and_bad_run(p, 30)
    dry = p.cli("revert", bad, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    planned = json.loads(dry.stdout)["runs"][0]
    assert (planned["changed"], planned["added"], planned["exited"]) == (bad_changes := (20, 2, 5))
    assert planned["calls"]["seg"]
    mark = p.mark()
    code, out = p.run_json_cmd("revert", bad)
    assert code == 0, out
    revert = out["runs"][0]
    assert revert["reverts"] == bad
    assert revert["run_id"] != bad
    assert (revert["changed"], revert["added"], revert["exited"]) == bad_changes
    assert revert["sent"] == sum(bad_changes)
    assert p.profiles() == before
    cleared = {c["userId"]: c["traits"] for c in p.calls_since(mark) if c["context"]["traits_engine"]["change"] == "exited"}
    assert cleared == {f"n{i}": {"plan": None, "score": None} for i in range(1, 6)}
    # the revert is in the history, and a run after it has nothing new to say about reverted ids
    history = json.loads(p.cli("history", "t", "--json").stdout)["runs"]
    assert history[0]["run_id"] == revert["run_id"]
    assert history[0]["reverts"] == bad
    assert f"{revert['run_id']} reverted run {bad}" in p.cli("history", "t").stdout
    # the snapshot holds the reverted values: a second revert of the same run has nothing to send
    code, out = p.run_json_cmd("revert", bad)
    assert code == 0
    assert out["runs"][0]["sent"] == 0


def test_a_revert_is_refused_when_a_later_run_changed_the_same_ids(semantics: SemanticsProject) -> None:
    p = semantics
    p.configure(TRAIT)
    bad, before = _before_and_bad_run(p, 12)
    p.sql("update people set score = 1000 where id in ('u1', 'u2')")
    code, out = p.run_json("t")
    assert code == 0
    mark = p.mark()
    code, out = p.run_json_cmd("revert", bad)
    assert code == 1
    assert "'u1', 'u2'" in out["error"]
    assert "--force" in out["error"]
    assert p.calls_since(mark) == []
    code, out = p.run_json_cmd("revert", bad, "--force", "--keep-added")
    assert code == 0, out
    held = p.profiles()
    assert {k: v for k, v in held.items() if not k.startswith("n")} == before
    assert {k for k in held if k.startswith("n")} == {f"n{i}" for i in range(1, 6)}  # --keep-added left them


@pytest.mark.parametrize("resume_by", ["revert", "run"])
def test_a_revert_killed_mid_delivery_resumes_and_ends_at_the_state_before(semantics: SemanticsProject, resume_by: str) -> None:
    p = semantics
    p.configure(TRAIT)
    bad, before = _before_and_bad_run(p, 900)
    known_runs = {bad} | {r["run_id"] for r in json.loads(p.cli("history", "t", "--json").stdout)["runs"]}
    gate = threading.Event()
    revert_requests = []

    def script(r: Received) -> Reply:
        if not r.calls or r.calls[0]["context"]["traits_engine"]["run_id"] in known_runs:
            return Reply()
        revert_requests.append(r)
        if len(revert_requests) <= 3 or gate.is_set():
            return Reply()
        gate.wait(60)  # held until the revert is killed
        return Reply(503, accept=False)

    p.receiver.script = script
    p.configure(TRAIT, concurrency=1)
    process = subprocess.Popen(
        [sys.executable, "-m", "traits.cli.main", "--config", str(p.root), "revert", bad],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    try:
        p.receiver.wait_for(lambda: len(revert_requests) >= 4, timeout=120)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        gate.set()
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert p.profiles() != before  # only part of the revert got through
    interrupted = json.loads(p.cli("history", "t", "--json").stdout)["runs"][0]
    assert (interrupted["status"], interrupted["reverts"]) == ("running", bad)
    if resume_by == "revert":
        code, out = p.run_json_cmd("revert", bad)  # resumes the killed revert under its run_id
        assert code == 0, out
    else:
        # the query is fixed; the trait's next run finishes the revert first, then finds nothing to send
        p.sql("drop table people")
        p.sql("create table people as select 'u' || g as id, 'pro' as plan, g as score from generate_series(1, 900) g")
        code, out = p.run_json("t")
        assert code == 0, out
        assert out["runs"][1]["sent"] == 0
    finished = out["runs"][0]
    assert finished["run_id"] == interrupted["run_id"]
    assert (finished["status"], finished["resumed"], finished["reverts"]) == ("ok", 1, bad)
    assert p.profiles() == before
    # a resent call kept its messageId and content
    seen: dict[str, str] = {}
    for call in p.receiver.accepted_calls():
        content = json.dumps({k: v for k, v in call.items() if k != "sentAt"}, sort_keys=True)
        assert seen.setdefault(call["messageId"], content) == content


def test_an_account_trait_revert_keeps_each_group_call_s_user_id(semantics: SemanticsProject) -> None:
    p = semantics
    p.configure(TRAIT.replace("kind: user", "kind: account").replace(
        "select id as user_id, plan, score from people", "select id as group_id, 'owner-' || id as user_id, plan, score from people"
    ))
    p.sql("create table people as select 'g' || g as id, 'pro' as plan, g as score from generate_series(1, 6) g")
    code, _ = p.run_json("t")
    assert code == 0
    before = p.profiles("groupId")
    p.sql("update people set plan = 'broken'")
    p.sql("insert into people values ('g99', 'new', 99)")
    code, out = p.run_json("t")
    assert code == 0
    mark = p.mark()
    code, out = p.run_json_cmd("revert", out["runs"][0]["run_id"])
    assert code == 0, out
    assert p.profiles("groupId") == before
    calls = {c["groupId"]: c for c in p.calls_since(mark)}
    assert calls["g99"]["traits"] == {"plan": None, "score": None}
    assert calls["g99"]["userId"] == "owner-g99"
    assert calls["g1"]["userId"] == "owner-g1"
