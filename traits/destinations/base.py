"""The one interface every destination implements, and the calls it carries.

The pipeline turns each changed row into a ``Call`` (its JSON already serialized) and hands a
destination an iterator of them. The destination pulls calls at its own pace, batches them
within its limits, sends, retries, and tells a ``DeliveryReport`` which calls were
acknowledged, which were given up, and whether it stopped. The report writes each
acknowledgement durably before returning, so a killed run loses nothing that was acked.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

Change = Literal["added", "changed", "exited"]


@dataclass(slots=True)
class Call:
    """One identify or group call for one identity value."""

    key: str  # the identity value: what the snapshot advances by
    change: Change
    message_id: str
    body: bytes  # the call as JSON, without sentAt


@dataclass(slots=True)
class CallBlock:
    """Many calls the engine made at once, in the form a writer takes whole.

    ``lines`` is every call's JSON followed by a newline, back to back (what a JSON Lines file
    appends in one write); ``keys_json`` is their identity values as JSON strings, each
    followed by a newline (what an acknowledgement log records). Both are views of the engine's
    Arrow buffers: no Python object per call is made.
    """

    lines: memoryview
    keys_json: memoryview
    count: int

    def identities(self) -> list[str]:
        # JSON escapes every newline inside a string: each line is one id
        return [json.loads(line) for line in bytes(self.keys_json).split(b"\n")[: self.count]]


class DeliveryReport(Protocol):
    """Where a destination reports what became of each call."""

    def acknowledged(self, calls: Sequence[Call]) -> None:
        """These calls were accepted; recorded durably before this returns."""

    def acknowledged_block(self, block: CallBlock) -> None:
        """Every call of ``block`` was accepted; recorded durably before this returns."""

    def rejected(self, call: Call, reason: str) -> None:
        """This call was given up: refused alone (400/413) or out of attempts."""

    def stopped(self, reason: str) -> None:
        """The destination stopped for this run (bad key, URL, redirect, deadline)."""


class Destination(ABC):
    """A place calls are sent to. One instance serves one run of one trait."""

    def __init__(self, name: str, config: Any, *, config_dir: Path, deadline: float | None = None) -> None:
        self.name = name
        self.config = config
        self.config_dir = config_dir
        #: a ``time.monotonic()`` instant after which nothing more is attempted
        self.deadline = deadline

    #: the largest call this destination accepts, in bytes of JSON
    max_call_bytes: int = 32_000
    #: set by a destination that takes ``CallBlock``s of at most this many calls; it must then
    #: read its calls with ``in_blocks``
    block_rows: int | None = None

    @abstractmethod
    async def deliver(self, calls: AsyncIterator[Call], report: DeliveryReport) -> None:
        """Send every call from ``calls``; report each outcome; return when all are settled."""

    async def check(self) -> str:
        """Check the destination is reachable and accepts our credentials; say what was found."""
        return "nothing to check"

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class CallStream(ABC):
    """Calls that can also be handed over a chunk or a block at a time (``pipeline.deliver.ChangeCalls``)."""

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[Call]: ...

    @abstractmethod
    def chunks(self) -> AsyncIterator[Sequence[Call]]:
        """The calls, a list at a time."""

    @abstractmethod
    def blocks(self) -> AsyncIterator[CallBlock | Sequence[Call]]:
        """The calls as whole blocks where the engine made them in bulk, else as lists."""


async def in_blocks(calls: AsyncIterator[Call]) -> AsyncGenerator[CallBlock | Sequence[Call], None]:
    """``calls`` a block at a time where the engine made them in bulk, else a list at a time.

    The pipeline's stream (``pipeline.deliver.ChangeCalls``) hands over whole blocks to a
    destination that set ``block_rows``; calls Python had to build (``send: changed``) still
    come as lists, and so does any other iterator.
    """
    if isinstance(calls, CallStream):
        async for block in calls.blocks():
            yield block
        return
    async for chunk in in_chunks(calls):
        yield chunk


async def in_chunks(calls: AsyncIterator[Call]) -> AsyncGenerator[Sequence[Call], None]:
    """``calls`` a list at a time.

    The pipeline's stream (``pipeline.deliver.ChangeCalls``) hands over the chunks it reads, so
    a batching destination does no async step per call (at a million calls that step shows);
    any other iterator gives one call per list.
    """
    if isinstance(calls, CallStream):
        async for chunk in calls.chunks():
            yield chunk
        return
    async for call in calls:
        yield (call,)
