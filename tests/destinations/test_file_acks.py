"""The file destination records each batch only after its lines are on disk, in order, while the
next batch is written; a failure to record stops the writing at the next batch."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from traits.config.models import FileDestination as FileConfig
from traits.destinations.base import Call, CallBlock
from traits.destinations.file import FileDestination
from traits.errors import LockLostError


class Report:
    """Records what was acknowledged, checking each batch's lines are in the file by then."""

    def __init__(self, path: Path, fail_at: int | None = None) -> None:
        self.path = path
        self.fail_at = fail_at
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.stop: str | None = None

    def acknowledged(self, calls: Sequence[Call]) -> None:
        self.threads.add(threading.current_thread().name)
        if self.fail_at is not None and len(self.batches) == self.fail_at:
            raise LockLostError("the lock was lost")
        written = self.path.read_bytes().splitlines()
        assert all(c.body in written for c in calls), "acknowledged before its lines were written"
        self.batches.append([c.key for c in calls])

    def acknowledged_block(self, block: CallBlock) -> None:
        raise AssertionError("no blocks here")

    def rejected(self, call: Call, reason: str) -> None:
        raise AssertionError(reason)

    def stopped(self, reason: str) -> None:
        self.stop = reason


async def _calls(n: int) -> AsyncIterator[Call]:
    for i in range(n):
        yield Call(key=f"u{i}", change="added", message_id=f"m{i}", body=f'{{"userId":"u{i}"}}'.encode())


def _destination(tmp_path: Path) -> FileDestination:
    config = FileConfig.model_validate({"type": "file", "path": "calls.jsonl", "batch_size": 10})
    return FileDestination("out", config, config_dir=tmp_path)


def test_batches_are_recorded_in_order_after_their_lines_and_off_the_event_loop(tmp_path: Path) -> None:
    report = Report(tmp_path / "calls.jsonl")
    asyncio.run(_destination(tmp_path).deliver(_calls(95), report))
    assert report.batches == [[f"u{i}" for i in range(start, min(start + 10, 95))] for start in range(0, 95, 10)]
    assert threading.main_thread().name not in report.threads
    assert report.stop is None


def test_a_failure_to_record_stops_the_writing_at_the_next_batch(tmp_path: Path) -> None:
    report = Report(tmp_path / "calls.jsonl", fail_at=2)
    with pytest.raises(LockLostError):
        asyncio.run(_destination(tmp_path).deliver(_calls(95), report))
    assert len(report.batches) == 2
    lines = (tmp_path / "calls.jsonl").read_bytes().splitlines()
    assert len(lines) <= 40  # the batch that failed to record, and at most the one written meanwhile
