"""SIGKILL a run at random points of delivery, ten times in a row: nothing is lost."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
from delivery_project import FAST, Rows, expected_profiles, make_project, run, start_run, write_rows
from receiver import Receiver, Reply, check_redeliveries

from traits.errors import ExitCode


@pytest.mark.slow
def test_killed_runs_lose_nothing(tmp_path: Path) -> None:
    rng = random.Random(7)
    # a little latency so a run spends its time in delivery, where the kills land
    with Receiver(lambda _r: Reply(delay=0.005)) as receiver:
        seg = {"type": "segment", "write_key": "k", "endpoint": receiver.url, "max_batch_calls": 4, "concurrency": 2, **FAST}
        history: list[Rows] = [{f"user-{i}": ("free", i, True) for i in range(400)}]
        config = make_project(tmp_path, {"seg": seg}, history[-1])
        kills = 0
        while kills < 10:
            before = len(receiver.snapshot())
            target = before + rng.randint(1, 8)
            process = start_run(config)
            deadline = time.monotonic() + 30
            while len(receiver.snapshot()) < target and process.poll() is None:
                assert time.monotonic() < deadline, "the run neither delivered nor ended"
                time.sleep(0.001)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
                kills += 1
            else:  # it finished first: give the next run something new to deliver
                assert process.returncode == ExitCode.OK, (config.parent / "run.log").read_text()[-2000:]
            if kills == 5 or process.returncode == ExitCode.OK:
                # new data while a killed run waits to be resumed: the resumed run finishes the old
                # result, the run after it sends the new one
                history.append({k: ("pro", score + 1, not active) for k, (_plan, score, active) in history[-1].items() if rng.random() < 0.9})
                write_rows(config, history[-1])
        for _ in range(3):
            result = run(config)
            assert result.exit_code == ExitCode.OK, result.record.error
            if result.record.sent == 0 and result.record.resumed == 0:
                break
        assert result.record.sent == 0
        assert receiver.profiles() == expected_profiles(history)
        check_redeliveries(receiver.accepted_calls())  # asserts duplicates are redeliveries of one messageId
