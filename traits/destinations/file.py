"""The file destination: JSON Lines, one call per line, appended atomically per batch.

Each batch is written to a file opened for appending, then fsynced before it is
acknowledged. A run killed mid-write can leave a torn last line: the next open cuts it, and
that batch, never acknowledged, is sent again (a batch may be appended twice, never lost).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from traits.destinations.base import Call, DeliveryReport, Destination
from traits.errors import ConfigError


class FileDestination(Destination):
    def __init__(self, name: str, config: Any, *, config_dir: Path, deadline: float | None = None) -> None:
        super().__init__(name, config, config_dir=config_dir, deadline=deadline)
        path = Path(config.path).expanduser()
        self.path = path if path.is_absolute() else config_dir / path
        self.batch_size: int = config.batch_size

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            _drop_torn_tail(fd)
            return fd
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
        try:
            batch: list[Call] = []
            async for call in calls:
                batch.append(call)
                if len(batch) >= self.batch_size:
                    await asyncio.to_thread(_write, fd, batch)
                    report.acknowledged(batch)
                    batch = []
            if batch:
                await asyncio.to_thread(_write, fd, batch)
                report.acknowledged(batch)
        except OSError as e:
            report.stopped(f"destination {self.name}: writing {self.path} failed: {e.strerror}")
        finally:
            os.close(fd)

    async def check(self) -> str:
        fd = self._open()
        os.close(fd)
        return f"{self.path} is writable"


def _write(fd: int, batch: list[Call]) -> None:
    data = b"\n".join(c.body for c in batch) + b"\n"
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.fsync(fd)


def _drop_torn_tail(fd: int) -> None:
    """Cut a last line a killed run left half written.

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
