"""Deliver: stream each destination's change file into it as calls, and record what it acked.

Destinations run concurrently; one that fails or pauses never holds back another. Each
acknowledged batch is written to the run's ack log (durably) before ``acknowledged`` returns,
which is what lets a killed run resume without losing anything. HTTP destinations call
``acknowledged`` from a worker thread so an fsync never stalls the event loop; the recorder
serializes appends with a lock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from traits.config.env import redact
from traits.destinations.base import Call, Destination
from traits.pipeline.payloads import CallBuilder
from traits.state.base import AckLog
from traits.state.records import MAX_REJECTIONS_KEPT, DestinationCounts

READ_ROWS = 5_000


def _chunks(changes: Path, builder: CallBuilder, rows: int = READ_ROWS) -> Iterator[tuple[list[Call], list[str]]]:
    """The change file as calls, a chunk at a time, with the ids that need no call (kept exits)."""
    parquet = pq.ParquetFile(changes)
    try:
        for batch in parquet.iter_batches(batch_size=rows, columns=["id", "change", "h", "v", "uid", "old_v"]):
            columns = [batch.column(i).to_pylist() for i in range(6)]
            calls: list[Call] = []
            skipped: list[str] = []
            for key, change, h, v, uid, old_v in zip(*columns, strict=True):
                call = builder.build(key, change, h, v, uid, old_v)
                if call is None:
                    skipped.append(key)
                else:
                    calls.append(call)
            yield calls, skipped
    finally:
        parquet.close()


def preview_calls(changes: Path, builder: CallBuilder, limit: int) -> list[Call]:
    """The first ``limit`` calls of a change file (for dry runs)."""
    found: list[Call] = []
    for calls, _ in _chunks(changes, builder, min(READ_ROWS, max(limit, 1))):
        found.extend(calls[: limit - len(found)])
        if len(found) >= limit:
            break
    return found


async def calls_from(changes: Path, builder: CallBuilder, recorder: Recorder) -> AsyncIterator[Call]:
    """Yield the calls of a change file; ids that need no call are acknowledged as they pass."""
    for calls, skipped in _chunks(changes, builder):
        if skipped:
            recorder.settle_without_call(skipped)
        for call in calls:
            yield call
        await asyncio.sleep(0)


class Recorder:
    """A destination's ``DeliveryReport`` for one run: counts, rejections, the ack log."""

    def __init__(self, counts: DestinationCounts, log: AckLog, on_progress: Callable[[int], None] | None = None) -> None:
        self.counts = counts
        self.log = log
        self.on_progress = on_progress
        self.stop_reason: str | None = None
        #: acknowledgements may come from worker threads; one append (and fsync) at a time
        self._lock = threading.Lock()

    def acknowledged(self, calls: Sequence[Call]) -> None:
        with self._lock:
            self.log.append(calls)
            self.counts.sent += len(calls)
        if self.on_progress is not None:
            self.on_progress(len(calls))

    def settle_without_call(self, keys: Sequence[str]) -> None:
        """Ids that need no call (exits kept with ``on_exit: keep``): logged so the snapshot drops them."""
        with self._lock:
            self.log.append([Call(key=k, change="exited", message_id="", body=b"") for k in keys])

    def rejected(self, call: Call, reason: str) -> None:
        with self._lock:
            if len(self.counts.rejections) < MAX_REJECTIONS_KEPT:
                self.counts.rejections.append({"id": call.key, "messageId": call.message_id, "reason": redact(reason)[:500]})

    def stopped(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = redact(reason)


@dataclass
class DeliveryJob:
    destination: Destination
    changes: Path
    builder: CallBuilder
    recorder: Recorder
    #: calls this destination should get (added + changed, plus exits when cleared)
    expected: int


async def deliver_all(jobs: list[DeliveryJob]) -> None:
    await asyncio.gather(*(_deliver_one(job) for job in jobs))


async def _deliver_one(job: DeliveryJob) -> None:
    counts = job.recorder.counts
    try:
        await job.destination.deliver(calls_from(job.changes, job.builder, job.recorder), job.recorder)
    except Exception as e:  # noqa: BLE001 - one destination's failure never stops another
        job.recorder.stopped(f"{type(e).__name__}: {e}")
    finally:
        try:
            await job.destination.aclose()
        finally:
            job.recorder.log.close()
    counts.failed = max(job.expected - counts.sent, 0)
    if job.recorder.stop_reason:
        counts.error = job.recorder.stop_reason
    elif counts.failed:
        counts.error = f"{counts.failed:,} call(s) not acknowledged"
    if counts.failed == 0:
        counts.status = "ok"
    elif counts.sent:
        counts.status = "partial"
    else:
        counts.status = "failed"
