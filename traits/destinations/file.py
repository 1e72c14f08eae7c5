"""The file destination: JSON Lines, one call per line, appended atomically per batch.

Writers of one file exclude each other: each batch is appended under an exclusive lock on
the file (``flock``, released by the kernel when its holder dies), and fsynced before it is
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
        acks = _Acknowledger(report, fd)
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
            report.stopped(self._failed(e))
        finally:
            try:
                await acks.finish()
            except OSError as e:
                report.stopped(self._failed(e))
            finally:
                os.close(fd)

    def _failed(self, error: OSError) -> str:
        return f"destination {self.name}: writing {self.path} failed: {error.strerror}"

    async def check(self) -> str:
        fd = self._open()
        os.close(fd)
        return f"{self.path} is writable"


class _Acknowledger:
    """Makes each written batch durable and records it as acknowledged, while the next is written.

    The fsync of a batch and its record in the ack log (durable too) run on a worker thread:
    on this machine the disk took as long to absorb a first sync's calls as they took to
    write, and the ack log's fsync a third of delivery, when each ran between two writes. A
    batch is recorded only after an fsync that followed its write, batches are recorded in
    order, and at most one is being synced and recorded while the next is written: a process
    killed meanwhile leaves that batch and the next in the file unrecorded, and both are sent
    again (a batch may be appended twice, never lost). A failure to sync or to record stops
    the writing at the next batch.
    """

    def __init__(self, report: DeliveryReport, fd: int) -> None:
        self.report = report
        self.fd = fd
        self.pending: asyncio.Future[None] | None = None

    async def send(self, written: list[Call] | CallBlock) -> None:
        await self.finish()  # the one before, in order; its failure stops the writing here
        self.pending = asyncio.ensure_future(asyncio.to_thread(self._sync_and_record, written))

    def _sync_and_record(self, written: list[Call] | CallBlock) -> None:
        os.fsync(self.fd)
        if isinstance(written, CallBlock):
            self.report.acknowledged_block(written)
        else:
            self.report.acknowledged(written)

    async def finish(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            await pending


def _lines(batch: list[Call]) -> bytes:
    return b"\n".join(c.body for c in batch) + b"\n"


def _write(fd: int, data: bytes | memoryview) -> None:
    """Append one batch's lines whole, under the file's lock (``_Acknowledger`` syncs them)."""
    with _exclusive(fd):
        _drop_torn_tail(fd)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]


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
