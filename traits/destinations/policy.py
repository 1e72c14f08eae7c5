"""The retry policy of every HTTP destination (PROTOCOL.md), as small pure pieces.

- ``classify`` maps a status code to what the engine does with the batch;
- ``backoff`` is full jitter, ``uniform(0, min(cap, base * 2**attempt))``;
- ``retry_after`` reads a ``Retry-After`` header (seconds or an HTTP date), clamped;
- ``Pacer`` spaces requests to honour optional requests/s and calls/s limits.

Kept apart from the engine so each piece is tested alone, without a server.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from email.utils import parsedate_to_datetime

#: a ``Retry-After`` pause is clamped to this range (seconds)
RETRY_AFTER_MIN = 1.0
RETRY_AFTER_MAX = 300.0


class Action(enum.Enum):
    ACK = "ack"  # 2xx: the collector has the calls
    SPLIT = "split"  # 400/413/422: something in the batch is refused; halve it to find what
    STOP = "stop"  # 3xx, 401/403/404/405/410, 501/505: retrying cannot help; fix the config
    RETRY = "retry"  # 408/429/5xx and anything unknown: may pass on its own


#: refusals that say the key, the URL or the method is wrong: every request would get them
_STOP = frozenset({401, 403, 404, 405, 410, 501, 505})
#: refusals of this request's content: a smaller batch may pass, a single call is rejected
_SPLIT = frozenset({400, 413, 422})


def classify(status: int) -> Action:
    if 200 <= status < 300:
        return Action.ACK
    if 300 <= status < 400 or status in _STOP:
        return Action.STOP
    if status in _SPLIT:
        return Action.SPLIT
    if status in (408, 429) or status >= 500:
        return Action.RETRY
    # other 4xx (402, 409, 415, 418, …) name no rule; they concern this request, so they are
    # treated like 400: the batch is halved and a call refused alone is rejected with the answer
    return Action.SPLIT


def backoff(attempt: int, base: float, cap: float) -> float:
    """Full jitter: spreads retries of many clients so they do not hammer a recovering server."""
    return random.uniform(0, min(cap, base * 2.0**attempt))  # noqa: S311 - jitter, not crypto


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to pause for a ``Retry-After`` header, clamped to 1–300 s; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP dates are GMT; a naive one is read as such
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, RETRY_AFTER_MIN), RETRY_AFTER_MAX)


class Pacer:
    """Spaces requests so neither ``rps`` requests/s nor ``cps`` calls/s is exceeded.

    Each request reserves the next free instant and waits for it; no burst is allowed, which
    keeps the arithmetic simple and the rate exact over any window longer than one request.
    """

    def __init__(self, rps: float | None, cps: float | None) -> None:
        self.rps = rps
        self.cps = cps
        self._free_at = 0.0

    @property
    def active(self) -> bool:
        return self.rps is not None or self.cps is not None

    def reserve(self, calls: int) -> float:
        """Reserve a slot for a request of ``calls`` calls; the monotonic instant it may start."""
        now = time.monotonic()
        start = max(now, self._free_at)
        gap = 0.0
        if self.rps is not None:
            gap = max(gap, 1.0 / self.rps)
        if self.cps is not None:
            gap = max(gap, calls / self.cps)
        self._free_at = start + gap
        return start

    async def wait(self, calls: int) -> None:
        if not self.active:
            return
        delay = self.reserve(calls) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


__all__ = ["RETRY_AFTER_MAX", "RETRY_AFTER_MIN", "Action", "Pacer", "backoff", "classify", "retry_after"]
