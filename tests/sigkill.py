"""Kill-and-resume rounds: ``traits run`` killed with SIGKILL at random points, then a final run.

Each round changes the trait's table (some rows change, some leave, some arrive), starts
``traits run t`` as a subprocess and kills it: every other round once some of its calls are out
(mid-delivery), the others after a random pause (startup, query, stage, diff, delivery or
commit). A final run must then succeed, leave the destination holding the table's values,
and the run after it must have nothing to send. The engine-specific parts (the table's
changes, reading it back, the per-run tables of warehouse mode) are the caller's.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import Project

TRAIT = """  t:
    kind: user
    source: wh
    sql: {sql}
    destinations: [out]
    max_exit_ratio: 1
"""


def start_run(project: Project) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "traits.cli.main", "--config", str(project.root), "run", "t"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def lines(project: Project) -> int:
    return project.calls_path.read_bytes().count(b"\n") if project.calls_path.exists() else 0


def sigkill_rounds(project: Project, *, sql: str, change: Callable[[int], None], expected: Callable[[], dict[str, dict[str, Any]]],
                   run_tables: Callable[[], list[str]], batch_size: int = 200, most_calls: int = 20_000, anywhere: float = 1.0,
                   rounds: int = 8) -> None:
    """``sql``: the trait's query over a table already filled; ``change(round)``: that round's
    change of it; ``expected()``: its values by user id (``{id: {trait: value}}``);
    ``run_tables()``: the per-run tables left in the bookkeeping schema (warehouse mode).
    A mid-delivery kill waits for up to ``most_calls`` of the run's calls; another comes after
    up to ``anywhere`` seconds."""
    project.write(TRAIT.format(sql=sql), destinations=f"  out: {{type: file, path: out/calls.jsonl, batch_size: {batch_size}}}\n")
    rng = random.Random(7)
    killed_during_delivery = 0
    for round_ in range(rounds):
        change(round_)
        lines_before = lines(project)
        process = start_run(project)
        if round_ % 2 == 0:
            # kill mid-delivery: once some of this run's calls are out (or the run has ended)
            target = lines_before + rng.randint(1, most_calls)
            wait_for(lambda: lines(project) >= target or process.poll() is not None, 60)  # noqa: B023
        else:
            time.sleep(rng.uniform(0.0, anywhere))  # anywhere: startup, query, stage, diff, delivery or commit
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            if lines(project) > lines_before:
                killed_during_delivery += 1
        process.wait(timeout=30)
    final = start_run(project)
    try:
        _, err = final.communicate(timeout=120)
    finally:
        if final.poll() is None:  # (timed out: no run is left behind)
            final.kill()
            final.wait()
    assert final.returncode == 0, err.decode()
    assert killed_during_delivery >= 2
    got, want = project.final(), expected()
    wrong = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
    assert not wrong, f"{len(wrong)} id(s) differ: " + "; ".join(f"{k}: sent {got.get(k)}, table {want.get(k)}" for k in wrong[:5])
    # and a run after that has nothing left to send
    code, out = project.run_json("t")
    assert code == 0
    assert out["runs"][0]["sent"] == 0
    if project.diff == "warehouse":
        # the killed runs' tables are gone: each run drops its own, and the next drops a killed one's
        assert run_tables() == []
        assert out["runs"][0]["rows_fetched"] == 0
