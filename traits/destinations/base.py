"""The one interface every destination implements, and the calls it carries.

The pipeline turns each changed row into a ``Call`` (its JSON already serialized) and hands a
destination an iterator of them. The destination pulls calls at its own pace, batches them
within its limits, sends, retries, and tells a ``DeliveryReport`` which calls were
acknowledged, which were given up, and whether it stopped. The report writes each
acknowledgement durably before returning, so a killed run loses nothing that was acked.
"""

from __future__ import annotations

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
    h: int | None = None  # the hash of the values the call carries (None for an exit)
    v: str | None = None  # the canonical JSON of those values (None for an exit)


class DeliveryReport(Protocol):
    """Where a destination reports what became of each call."""

    def acknowledged(self, calls: Sequence[Call]) -> None:
        """These calls were accepted; recorded durably before this returns."""

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

    @abstractmethod
    async def deliver(self, calls: AsyncIterator[Call], report: DeliveryReport) -> None:
        """Send every call from ``calls``; report each outcome; return when all are settled."""

    async def check(self) -> str:
        """Check the destination is reachable and accepts our credentials; say what was found."""
        return "nothing to check"

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


async def in_chunks(calls: AsyncIterator[Call]) -> AsyncGenerator[Sequence[Call], None]:
    """``calls`` a list at a time.

    The pipeline's stream (``pipeline.deliver.ChangeCalls``) hands over the chunks it reads, so
    a batching destination does no async step per call (at a million calls that step shows);
    any other iterator gives one call per list.
    """
    chunks = getattr(calls, "chunks", None)
    if chunks is not None:
        async for chunk in chunks():
            yield chunk
        return
    async for call in calls:
        yield (call,)
