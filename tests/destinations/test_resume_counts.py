"""A resumed run's counts are the sum over all its attempts; re-sent calls keep their messageIds."""

from __future__ import annotations

import base64
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from delivery_project import FAST, make_project, run, start_run
from receiver import Receiver, Reply, check_redeliveries

from traits.errors import ExitCode

ROWS = 2_000


def _kill_mid_delivery(config: Path, receiver: Receiver, requests: int) -> None:
    process = start_run(config)
    deadline = time.monotonic() + 60
    while len(receiver.snapshot()) < requests:
        assert process.poll() is None, (config.parent / "run.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "the run did not deliver"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def _run_ids(calls: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for call in calls:
        out.setdefault(call["context"]["traits_engine"]["run_id"], set()).add(call["messageId"])
    return out


@pytest.mark.parametrize("kind", ["segment", "webhook"])
def test_a_resumed_run_counts_every_attempt(tmp_path: Path, kind: str) -> None:
    with Receiver(lambda _r: Reply(delay=0.003)) as receiver:
        if kind == "segment":
            dest = {"type": "segment", "write_key": "k", "endpoint": receiver.url, "max_batch_calls": 10, "concurrency": 2, **FAST}
        else:
            secret = "whsec_" + base64.b64encode(b"k" * 24).decode()  # signed: each request carries a webhook-id
            dest = {"type": "webhook", "url": receiver.url + "/hook", "batch_size": 10, "concurrency": 2, "secret": secret, **FAST}
        config = make_project(tmp_path, {"out": dest}, {f"user-{i}": ("free", i, True) for i in range(ROWS)})
        _kill_mid_delivery(config, receiver, 40)
        _kill_mid_delivery(config, receiver, 80)  # the resume, killed too
        result = run(config)
        assert result.exit_code == ExitCode.OK, result.record.error
        assert result.resumed is not None
        resumed = result.resumed.record
        assert resumed.resumed == 2
        received = _run_ids(receiver.accepted_calls())
        # the run sent (was acknowledged for) exactly the distinct calls the collector got from it
        assert len(received[resumed.run_id]) == ROWS
        assert resumed.sent == ROWS
        assert resumed.added == ROWS
        assert resumed.destinations["out"].sent == ROWS
        assert resumed.destinations["out"].failed == 0
        assert result.record.sent == 0
        # re-sent calls carry the messageId (and content) they had; batches are new requests
        assert check_redeliveries(receiver.accepted_calls()) >= 0
        if kind == "webhook":
            # a webhook-id names one batch's calls: a batch sent again whole keeps it, a new
            # grouping of re-sent calls gets a new one; receivers deduplicate on each messageId
            batches: dict[str, frozenset[str]] = {}
            for request in receiver.snapshot():
                members = frozenset(c["messageId"] for c in request.calls)
                assert batches.setdefault(request.headers["webhook-id"], members) == members
            assert len(set(batches.values())) == len(batches)
