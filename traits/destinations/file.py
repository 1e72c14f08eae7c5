"""The file destination: JSON Lines, one call per line, appended atomically per batch.

Writers of one file exclude each other: each batch is appended under an exclusive lock on
the file (``flock``, released by the kernel when its holder dies), then fsynced before it is
acknowledged. So whatever another writer finds at the end of the file while it holds the lock
is whole, except the torn last line of a writer killed mid-write: that is cut before the next
batch is appended, and its batch, never acknowledged, is sent again (a batch may be appended
twice, never lost). ``check`` only opens the file; it never cuts.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from traits.destinations.base import Call, CallBlock, DeliveryReport, Destination, in_blocks
from traits.errors import ConfigError


class FileDestination(Destination):
    def __init__(self, name: str, config: Any, *, config_dir: Path, deadline: float | None = None) -> None:
        super().__init__(name, config, config_dir=config_dir, deadline=deadline)
        path = Path(config.path).expanduser()
        self.path = path if path.is_absolute() else config_dir / path
        self.batch_size: int = config.batch_size
        # the engine's blocks of at most a batch each are written as they come: one write per batch
        self.block_rows = self.batch_size

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise ConfigError(
                f"destination {self.name}: cannot write {self.path}: {e.strerror}", hint="check the path and its permissions"
            ) from e

    async def deliver(self, calls: AsyncIterator[Call], report: DeliveryReport) -> None:
        try:
            fd = self._open()
        except ConfigError as e:
            report.stopped(str(e))
            return
        acks = _Acknowledger(report)
        try:
            batch: list[Call] = []
            async for chunk in in_blocks(calls):
                if isinstance(chunk, CallBlock):
                    if batch:  # calls before the block go first, in order
                        await asyncio.to_thread(_write, fd, _lines(batch))
                        await acks.send(batch)
                        batch = []
                    await asyncio.to_thread(_write, fd, chunk.lines)
                    await acks.send(chunk)
                    continue
                for call in chunk:
                    batch.append(call)
                    if len(batch) >= self.batch_size:
                        await asyncio.to_thread(_write, fd, _lines(batch))
                        await acks.send(batch)
                        batch = []
            if batch:
                await asyncio.to_thread(_write, fd, _lines(batch))
                await acks.send(batch)
        except OSError as e:
            report.stopped(f"destination {self.name}: writing {self.path} failed: {e.strerror}")
        finally:
            try:
                await acks.finish()
            finally:
                os.close(fd)

    async def check(self) -> str:
        fd = self._open()
        os.close(fd)
        return f"{self.path} is writable"


class _Acknowledger:
    """Records each written batch as acknowledged on a worker thread, while the next is written.

    Recording is durable (the ack log's fsync), and on this machine it took a third of a first
    sync's delivery when it ran between two writes. A batch is recorded only after its lines
    were fsynced, batches are recorded in order, and at most one is being recorded while the
    next is written: a process killed meanwhile leaves that batch and the next in the file
    unrecorded, and both are sent again (a batch may be appended twice, never lost). A failure
    to record stops the writing at the next batch.
    """

    def __init__(self, report: DeliveryReport) -> None:
        self.report = report
        self.pending: asyncio.Future[None] | None = None

    async def send(self, written: list[Call] | CallBlock) -> None:
        await self.finish()  # the one before, in order; its failure stops the writing here
        if isinstance(written, CallBlock):
            self.pending = asyncio.ensure_future(asyncio.to_thread(self.report.acknowledged_block, written))
        else:
            self.pending = asyncio.ensure_future(asyncio.to_thread(self.report.acknowledged, written))

    async def finish(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            await pending


def _lines(batch: list[Call]) -> bytes:
    return b"\n".join(c.body for c in batch) + b"\n"


def _write(fd: int, data: bytes | memoryview) -> None:
    """Append one batch's lines whole, under the file's lock, and fsync them."""
    with _exclusive(fd):
        _drop_torn_tail(fd)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)


@contextmanager
def _exclusive(fd: int) -> Iterator[None]:
    """Hold the file's exclusive lock: no other writer (process or thread) appends meanwhile."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _drop_torn_tail(fd: int) -> None:
    """Cut a last line a killed writer left half written (called with the file's lock held).

    That batch was never acknowledged, so it is sent again whole; without the cut its first
    call would be glued to the torn line and neither would parse.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    end = size
    while end > 0:
        start = max(0, end - 65536)
        at = os.pread(fd, end - start, start).rfind(b"\n")
        if at >= 0:
            os.ftruncate(fd, start + at + 1)
            return
        end = start
    os.ftruncate(fd, 0)
