"""Deliver: stream each destination's change file into it as calls, and record what it acked.

Destinations run concurrently; one that fails or pauses never holds back another. Each
acknowledged batch is written to the run's ack log (durably) before ``acknowledged`` returns,
which is what lets a killed run resume without losing anything. HTTP destinations call
``acknowledged`` from a worker thread so an fsync never stalls the event loop; the recorder
serializes appends with a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from traits import columnar
from traits.config.env import redact
from traits.destinations.base import Call, CallBlock, CallStream, Destination
from traits.errors import TraitsError
from traits.pipeline.payloads import CallBuilder
from traits.snapshot_format import source
from traits.state.base import AckLog
from traits.state.records import MAX_REJECTIONS_KEPT, DestinationCounts

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("traits.deliver")

#: rows per chunk read from the change file: large enough for the engine to vectorize well
READ_ROWS = 10_000
#: the most calls in one block (``CallBlock``): a block's lines are held in memory at once
MAX_BLOCK_ROWS = 50_000


def _chunks(
    changes: Path, builder: CallBuilder, rows: int = READ_ROWS, *, bulk: bool = False
) -> Generator[tuple[list[Call] | CallBlock, list[str]], None, None]:
    """The change file as calls, a chunk at a time, with the ids that need no call (kept exits).

    The engine makes the messageId and body of most calls (``CallBuilder.select_sql``); Python
    only wraps them, and builds the few it cannot (exits, ``send: changed``). With ``bulk`` a
    chunk whose every call the engine made comes as one ``CallBlock``: its lines and ids as
    the engine's buffers, with no Python object per call.
    """
    con = columnar.connect()
    try:
        relation = con.sql(builder.select_sql(source(con, changes, "changes"), lines=bulk))
        # a streaming reader keeps memory at a chunk; DuckDB 2 renamed fetch_arrow_reader
        reader = getattr(relation, "to_arrow_reader", None) or getattr(relation, "fetch_arrow_reader")  # noqa: B009
        for batch in reader(rows):
            if bulk and batch.num_rows and batch.column(7).null_count == 0:
                yield CallBlock(joined(batch.column(7)), joined(batch.column(8)), batch.num_rows), []
                continue
            columns = [batch.column(i).to_pylist() for i in range(8)]
            calls: list[Call] = []
            skipped: list[str] = []
            for key, change, _, values_json, user_id, old_values_json, mid, body in zip(*columns, strict=True):
                if body is not None:
                    made = body.encode()[:-1] if bulk else body  # a line ends in a newline
                    calls.append(Call(key, change, mid, made))
                    continue
                call = builder.build(key, change, values_json, user_id, old_values_json)
                if call is None:
                    skipped.append(key)
                else:
                    calls.append(call)
            yield calls, skipped
    finally:
        con.close()


def joined(array: pa.Array) -> memoryview:
    """The values of a string array without nulls, back to back: a view of its data buffer."""
    import pyarrow as pa

    _, offsets, data = array.buffers()
    positions = memoryview(offsets).cast("B").cast("q" if pa.types.is_large_string(array.type) else "i")
    start, end = positions[array.offset], positions[array.offset + len(array)]
    if data is None:
        return memoryview(b"")
    return memoryview(data)[start:end]


def preview_calls(changes: Path, builder: CallBuilder, limit: int) -> list[Call]:
    """The first ``limit`` calls of a change file (for dry runs)."""
    found: list[Call] = []
    for calls, _ in _chunks(changes, builder, min(READ_ROWS, max(limit, 1))):
        assert isinstance(calls, list)
        found.extend(calls[: limit - len(found)])
        if len(found) >= limit:
            break
    return found


class ChangeCalls(CallStream):
    """The calls of a change file: an async iterator of calls, and (faster) of whole chunks.

    Chunks are read in a worker thread, the next one while this one is being sent: the engine
    computes without the GIL, so reading overlaps sending instead of stalling the event loop.
    Only one chunk is read ahead, which keeps memory bounded. Ids that need no call (kept exits)
    are acknowledged as they pass. A destination that batches takes whole chunks
    (``destinations.base.in_chunks``) and skips a Python step per call; one that sets
    ``block_rows`` (the file) takes ``CallBlock``s (``in_blocks``): the engine's text of a whole
    batch, written and acknowledged with no Python object per call.
    """

    def __init__(self, changes: Path, builder: CallBuilder, recorder: Recorder, block_rows: int | None = None) -> None:
        # a destination that takes blocks gets chunks of its batch size (bounded: memory)
        rows = min(block_rows, MAX_BLOCK_ROWS) if block_rows else READ_ROWS
        self._source = _chunks(changes, builder, rows, bulk=block_rows is not None)
        self._recorder = recorder
        self._reader = self._read()
        self._current: Iterator[Call] = iter(())

    async def _read(self) -> AsyncGenerator[list[Call] | CallBlock, None]:
        ahead = asyncio.ensure_future(asyncio.to_thread(next, self._source, None))
        try:
            while (chunk := await ahead) is not None:
                ahead = asyncio.ensure_future(asyncio.to_thread(next, self._source, None))
                calls, skipped = chunk
                if skipped:
                    self._recorder.settle_without_call(skipped)
                if isinstance(calls, CallBlock) or calls:
                    yield calls
        finally:
            # the thread may still be inside the reader; close it once that read has returned
            with contextlib.suppress(BaseException):
                await asyncio.shield(ahead)
            self._source.close()

    async def chunks(self) -> AsyncGenerator[list[Call], None]:
        async for chunk in self._reader:
            assert not isinstance(chunk, CallBlock), "blocks go only to a destination that reads them (block_rows)"
            yield chunk

    def blocks(self) -> AsyncGenerator[list[Call] | CallBlock, None]:
        return self._reader

    def __aiter__(self) -> ChangeCalls:
        return self

    async def __anext__(self) -> Call:
        while True:
            call = next(self._current, None)
            if call is not None:
                return call
            chunk = await self._reader.__anext__()  # StopAsyncIteration ends it
            assert not isinstance(chunk, CallBlock), "blocks go only to a destination that reads them (block_rows)"
            self._current = iter(chunk)

    async def aclose(self) -> None:
        await self._reader.aclose()


def calls_from(changes: Path, builder: CallBuilder, recorder: Recorder, block_rows: int | None = None) -> ChangeCalls:
    return ChangeCalls(changes, builder, recorder, block_rows)


class Recorder:
    """A destination's ``DeliveryReport`` for one run: counts, rejections, the ack log."""

    def __init__(self, counts: DestinationCounts, log: AckLog, on_progress: Callable[[int], None] | None = None) -> None:
        self.counts = counts
        self.log = log
        self.on_progress = on_progress
        self.stop_reason: str | None = None
        #: an error recording acknowledgements: the whole run stops on it
        self.fatal: TraitsError | None = None
        #: acknowledgements may come from worker threads; one append (and fsync) at a time
        self._lock = threading.Lock()

    def acknowledged(self, calls: Sequence[Call]) -> None:
        with self._lock:
            self._append(calls)
            self.counts.sent += len(calls)
        if self.on_progress is not None:
            self.on_progress(len(calls))

    def acknowledged_block(self, block: CallBlock) -> None:
        with self._lock:
            self._append(block)
            self.counts.sent += block.count
        if self.on_progress is not None:
            self.on_progress(block.count)

    def settle_without_call(self, keys: Sequence[str]) -> None:
        """Ids that need no call (exits kept with ``on_exit: keep``): logged so the snapshot drops them."""
        with self._lock:
            self._append([Call(key=k, change="exited", message_id="", body=b"") for k in keys])

    def _append(self, calls: Sequence[Call] | CallBlock) -> None:
        if self.fatal is not None:
            raise self.fatal
        try:
            if isinstance(calls, CallBlock):
                self.log.append_block(calls)
            else:
                self.log.append(calls)
        except TraitsError as e:
            # acks that cannot be recorded (the store failed, the lock was lost) end the run:
            # nothing more is sent anywhere, and what was sent is sent again on resume
            self.fatal = e
            raise

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
    """Deliver every job at once; an error recording acks (``Recorder.fatal``) stops them all."""
    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(_deliver_one(job))
    except BaseExceptionGroup as e:
        raise e.exceptions[0] from None


async def _deliver_one(job: DeliveryJob) -> None:
    counts = job.recorder.counts
    calls = calls_from(job.changes, job.builder, job.recorder, job.destination.block_rows)
    try:
        await job.destination.deliver(calls, job.recorder)
    except Exception as e:
        if job.recorder.fatal is None:
            # a bug in a destination, not a refusal: its trace is in the --debug log
            trace = log.isEnabledFor(logging.DEBUG)
            log.error(  # noqa: TRY400 - the trace only with --debug
                "destination %s failed: %s: %s", job.destination.name, type(e).__name__, redact(str(e)),
                exc_info=trace, extra={"destination": job.destination.name},
            )
            job.recorder.stopped(f"destination {job.destination.name}: {type(e).__name__}: {e}")
    finally:
        try:
            await calls.aclose()  # a destination that stopped early leaves the reader open
            await job.destination.aclose()
        finally:
            job.recorder.log.close()
    if job.recorder.fatal is not None:
        raise job.recorder.fatal
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
