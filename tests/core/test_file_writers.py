"""Several processes writing one file destination, with `validate --connect` looping: nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import Project

ROWS = 40_000
TRAITS = ("a", "b", "c")


def _traits() -> str:
    # the writers share their keys on purpose (one file, three writers): allowed, not a collision
    return "".join(
        f"  {name}:\n    kind: user\n    source: wh\n    sql: select id as user_id, n, '{name}' as src from people\n    destinations: [out]\n"
        "    allow_shared_keys: true\n"
        for name in TRAITS
    )


def _command(project: Project, *args: str) -> list[str]:
    return [sys.executable, "-m", "traits.cli.main", "--config", str(project.root), *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}


def _open_until(project: Project, done: threading.Event) -> None:
    """What `validate --connect` does to the file, as fast as it can: it must never cut a writer's batch."""
    from traits.config import load_config
    from traits.destinations import open_destination

    config = load_config(project.root)
    destination = open_destination("out", config.destinations["out"], config_dir=config.directory)
    while not done.is_set():
        asyncio.run(destination.check())


@pytest.mark.slow
def test_concurrent_writers_of_one_file_lose_no_acknowledged_call(duck_project: Project) -> None:
    if duck_project.diff == "warehouse":
        pytest.skip("the file destination's writers are the same code in both diff modes: run once, in local mode")
    project = duck_project
    project.sql(f"create table people as select 'u' || g as id, g % 97 as n from range({ROWS}) t(g)")
    # large batches make each append long, so writers and checks overlap on every batch
    project.write(_traits(), destinations="  out: {type: file, path: out/calls.jsonl, batch_size: 10000}\n")
    for round_ in range(2):
        if round_:
            project.sql("update people set n = n + 1")  # every row changes: a second full round of appends
        done = threading.Event()
        opener = threading.Thread(target=_open_until, args=(project, done))
        opener.start()
        runs = [subprocess.Popen(_command(project, "run", name), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env()) for name in TRAITS]
        checks = 0
        # `validate --connect` opens the file while the writers append, until they are all done
        while any(r.poll() is None for r in runs) and checks < 200:
            check = subprocess.run(_command(project, "validate", "--connect"), capture_output=True, env=_env(), timeout=120)
            assert check.returncode == 0, check.stderr.decode()
            checks += 1
        for r in runs:
            _, err = r.communicate(timeout=300)
            assert r.returncode == 0, err.decode()
        done.set()
        opener.join()
    lines = project.calls_path.read_bytes().splitlines()
    calls = [json.loads(line) for line in lines]  # every line parses
    received = Counter(c["context"]["traits_engine"]["run_id"] for c in calls)
    history = json.loads(subprocess.run(_command(project, "history", "--json", "--limit", "50"), capture_output=True, env=_env(), check=True).stdout)
    runs_done = history["runs"]
    assert len(runs_done) == 2 * len(TRAITS)
    for run in runs_done:
        assert run["status"] == "ok"
        assert run["sent"] == ROWS
        # every call history says was acknowledged is in the file
        assert received[run["run_id"]] >= run["sent"], (run["trait"], run["run_id"], received[run["run_id"]])
    distinct = {(c["context"]["traits_engine"]["trait"], c["userId"], c["traits"]["n"]) for c in calls}
    assert len(distinct) == 2 * len(TRAITS) * ROWS
