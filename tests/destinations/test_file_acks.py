"""The file destination records each batch only after its lines are on disk (an fsync that followed
their write), in order, while the next batch is written; a failure to sync or to record stops the
writing at the next batch."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from traits.config.models import FileDestination as FileConfig
from traits.destinations import file as file_destination
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


def test_a_batch_is_recorded_only_after_an_fsync_that_followed_its_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "calls.jsonl"
    synced: list[int] = []  # the file's size at each fsync
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)
        real_fsync(fd)

    class SyncedReport(Report):
        def acknowledged(self, calls: Sequence[Call]) -> None:
            durable = path.read_bytes()[: max(synced, default=0)].splitlines()
            assert all(c.body in durable for c in calls), "recorded before an fsync covered its lines"
            super().acknowledged(calls)

    monkeypatch.setattr(os, "fsync", fsync)
    report = SyncedReport(path)
    asyncio.run(_destination(tmp_path).deliver(_calls(95), report))
    assert len(report.batches) == 10
    assert len(synced) >= 10


def test_the_next_batch_is_written_while_the_one_before_is_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    second_written = threading.Event()
    writes: list[int] = []
    real_write, real_fsync = file_destination._write, os.fsync

    def write(fd: int, data: bytes | memoryview) -> None:
        real_write(fd, data)
        writes.append(len(data))
        if len(writes) == 2:
            second_written.set()

    overlapped: list[bool] = []

    def fsync(fd: int) -> None:
        if not overlapped:  # the first batch's sync waits (with a deadline) for the second batch's write
            overlapped.append(second_written.wait(timeout=30))
        real_fsync(fd)

    monkeypatch.setattr(file_destination, "_write", write)
    monkeypatch.setattr(os, "fsync", fsync)
    report = Report(tmp_path / "calls.jsonl")
    asyncio.run(_destination(tmp_path).deliver(_calls(35), report))
    assert overlapped == [True], "the second batch was not written while the first was being synced"
    assert report.batches == [[f"u{i}" for i in range(s, min(s + 10, 35))] for s in range(0, 35, 10)]


def test_a_failed_fsync_stops_the_writing_and_records_nothing_it_covered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    report = Report(tmp_path / "calls.jsonl")
    asyncio.run(_destination(tmp_path).deliver(_calls(95), report))
    assert report.batches == [[f"u{i}" for i in range(10)]]  # the batch whose fsync failed is not recorded
    assert report.stop is not None
    assert "calls.jsonl" in report.stop
    assert "Input/output error" in report.stop
    assert len((tmp_path / "calls.jsonl").read_bytes().splitlines()) <= 30  # nothing more after the next batch
