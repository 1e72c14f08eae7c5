"""The daemon keeps its schedule while its console serves 50 clients at once.

A real daemon process runs a small trait every 3 s; 50 client threads request console pages
and their JSON twins back to back for ``TRAITS_CONSOLE_LOAD_SECONDS`` (30 by default, the
figure the issue asks for). Delays are read from the scheduler's own records: with no
jitter an interval trigger fires at t0 + k·3 s, so each run's ``started_at`` minus its slot
is its delay, measured against the least late run (the first run, which pays the process's
first imports, is left out). No run may start more than a second late, and no slot may be
skipped while the trait was idle.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime

import httpx
import pytest

from tests.scheduler.conftest import Daemon, Project, trait_yaml, wait_for

INTERVAL = 3.0
CLIENTS = 50
MAX_DELAY = 1.0
DURATION = float(os.environ.get("TRAITS_CONSOLE_LOAD_SECONDS", "30"))


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.mark.slow
def test_a_loaded_console_does_not_delay_due_runs(project: Project, daemons: Callable[..., Daemon]) -> None:
    project.traits(trait_yaml("fast", "select 'u' || i as user_id, i % 7 as n from range(20) t(i)", "out_a", schedule="every 3s"))
    daemon = daemons()
    wait_for(lambda: project.finished("fast"), "the first run", 30)
    first = project.finished("fast")[0]
    listed = httpx.get(f"http://127.0.0.1:{daemon.port}/api/traits", timeout=30).json()["traits"]
    assert [t["name"] for t in listed] == ["fast"]
    assert listed[0]["next_run"] is not None, "the daemon's console shows when the trait runs next"
    paths = ["/", "/api/traits", "/traits/fast", "/api/traits/fast", f"/runs/{first.run_id}", f"/api/runs/{first.run_id}", "/profiles/u3", "/healthz"]
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    end = time.monotonic() + DURATION
    max_requests = int(DURATION * 2000)  # a bound on each client's loop, whatever the clock does

    def client(offset: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{daemon.port}", timeout=30) as http:
            for n in range(max_requests):
                if time.monotonic() > end:
                    return
                code = http.get(paths[(offset + n) % len(paths)]).status_code
                with lock:
                    statuses[code] = statuses.get(code, 0) + 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    load_started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load_ended = time.time()
    # one more run after the load, so the window is closed by a run on either side
    wait_for(lambda: any(seconds(r.started_at) > load_ended for r in project.finished("fast")), "a run after the load", 30)
    assert daemon.stop() == 0

    assert set(statuses) == {200}, statuses
    served = sum(statuses.values())
    # the first run pays the process's first imports of the engine and drivers, so it can start
    # late, off the trigger's grid (under load, past its next slot): the grid is read from the
    # runs after it
    runs = project.finished("fast")[1:]
    base = seconds(runs[0].started_at)
    offsets = [0.0]
    for previous, run in itertools.pairwise(runs):
        start = seconds(run.started_at)
        slot = round((start - base) / INTERVAL)
        offsets.append(start - (base + slot * INTERVAL))
        # a slot skipped while the previous run had already finished would be a late run
        previous_slot = round((seconds(previous.started_at) - base) / INTERVAL)
        for skipped in range(previous_slot + 1, slot):
            assert previous.finished_at is not None
            assert seconds(previous.finished_at) > base + skipped * INTERVAL, f"slot {skipped} skipped while the trait was idle"
    # the schedule's true phase is unknown (the first run may itself have started a little
    # late): measure each run against the least late one
    reference = min(offsets)
    delays = [o - reference for o in offsets][1:]
    during = [d for d, r in zip(delays, runs[1:], strict=True) if load_started <= seconds(r.started_at) <= load_ended]
    print(f"\nconsole load: {CLIENTS} clients, {DURATION:g} s, {served:,} requests ({served / DURATION:,.0f}/s); "
          f"{len(during)} runs during the load, worst start delay {max(during, default=0):.3f} s")
    assert len(during) >= max(1, int(DURATION / INTERVAL) - 2), "the trait did not keep running during the load"
    assert served >= CLIENTS, "the console served fewer requests than there are clients"
    assert all(d <= MAX_DELAY for d in delays), [round(d, 3) for d in delays]
