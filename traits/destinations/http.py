"""The engine every HTTP destination shares: batch, send, retry, pace, report.

A subclass says how a batch becomes a request (``build_request``, called at every attempt so
``sentAt`` and signatures are fresh) and how big a batch may be; this class owns the control
flow:

- one producer pulls calls from the pipeline only when a worker can take a batch (a queue of
  ``concurrency`` batches), so memory stays bounded however many rows changed;
- ``concurrency`` workers, each with one request in flight at most;
- the retry policy of ``policy.classify``: 2xx acknowledged; 400/413 halved down to the one
  call refused, which is rejected with the answer (a collector that refuses request after
  request, ``refusal_limit`` in a row, is stopped); 3xx/401/403/404 stop the destination;
  408/429/5xx and network errors retried with full-jitter backoff up to ``max_attempts``;
- ``Retry-After`` on 429/503 pauses every worker of this destination, without using an attempt;
- the run's delivery deadline: past it, nothing more is attempted and the destination stops.

Acknowledgements are written (fsynced) in a worker thread, one batch at a time, so the event
loop keeps sending while the disk catches up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from traits import __version__
from traits.config.env import redact
from traits.destinations.base import Call, DeliveryReport, Destination, in_chunks
from traits.destinations.policy import Action, Pacer, backoff, classify, retry_after

log = logging.getLogger("traits.destinations")

USER_AGENT = f"sql-traits/{__version__}"
#: how much of a refusal's body is kept as the reason a call was rejected
REASON_CHARS = 500
#: batches given up in a row (no acknowledgement between) after which the destination stops
GIVE_UP_STOP = 3


@dataclass(slots=True)
class Request:
    url: str
    headers: dict[str, str]
    content: bytes


@dataclass(slots=True)
class Answer:
    """What one attempt came to."""

    action: Action
    detail: str  # for reports: the status and the start of the body, or the network error
    status: int | None = None
    pause: float | None = None  # a Retry-After pause, when the answer carried one


def sent_at() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def batch_envelope(calls: Sequence[Call], stamp: str) -> bytes:
    """``{"batch":[…],"sentAt":"…"}`` built by joining the calls' JSON, not re-serializing it."""
    return b'{"batch":[' + b",".join(c.body for c in calls) + b'],"sentAt":"' + stamp.encode() + b'"}'


#: the bytes the envelope adds around the joined calls (sentAt is always 24 characters)
ENVELOPE_BYTES = len(batch_envelope([], "2026-01-01T00:00:00.000Z"))


class HttpDestination(Destination):
    #: most calls and bytes (of the whole request body) in one request
    max_batch_calls: int = 1
    max_batch_bytes: int = 490_000
    #: what a 401/403 means and what to do, for the stop message
    auth_hint: str = "check the credentials"

    def __init__(self, name: str, config: Any, *, config_dir: Path, deadline: float | None = None) -> None:
        super().__init__(name, config, config_dir=config_dir, deadline=deadline)
        self.max_call_bytes = config.max_call_bytes
        self.concurrency: int = config.concurrency
        self.max_attempts: int = config.max_attempts
        self.backoff_base: float = config.retry_backoff
        self.backoff_cap: float = config.retry_backoff_max
        self._pacer = Pacer(config.rate_limit_rps, config.rate_limit_cps)
        self._client: httpx.AsyncClient | None = None
        self._stop_reason: str | None = None
        self._resume_at = 0.0  # monotonic instant a Retry-After pause ends
        self._ack_lock: asyncio.Lock | None = None
        self._given_up_in_a_row = 0  # batches out of attempts since the last acknowledgement
        self._refused_in_a_row = 0  # requests refused (split or rejected) since the last acknowledgement

    @property
    def refusal_limit(self) -> int:
        """Refused requests in a row after which the destination stops (``SPLIT`` answers, PROTOCOL.md).

        Isolating one bad call in a batch of n takes about log2(n) refusals before a good half is
        accepted, and each worker may be isolating one at once; twice that, plus a margin, is a
        bound no collector that accepts some calls reaches, and it keeps a collector that
        refuses everything to a few hundred requests, whatever the number of calls.
        """
        return self.concurrency * 2 * (self.max_batch_calls.bit_length() + 2)

    # -- what a subclass provides ---------------------------------------------------------------
    @abstractmethod
    def build_request(self, calls: Sequence[Call]) -> Request:
        """The request for ``calls``; called at every attempt."""

    def default_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "User-Agent": USER_AGENT}

    # -- the client -----------------------------------------------------------------------------
    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = httpx.Timeout(self.config.timeout, connect=self.config.connect_timeout, pool=None)
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            proxy = self.config.proxy.get_secret_value() if self.config.proxy is not None else None
            # trust_env off: no proxy variables or .netrc credentials slip in unseen; a proxy is configured
            self._client = httpx.AsyncClient(
                timeout=timeout, limits=limits, follow_redirects=False, headers=self.default_headers(), trust_env=False, proxy=proxy
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- delivery -------------------------------------------------------------------------------
    async def deliver(self, calls: AsyncIterator[Call], report: DeliveryReport) -> None:
        self._ack_lock = asyncio.Lock()
        _ = self.client  # made before the first request so its setup (TLS context) is not paced
        queue: asyncio.Queue[list[Call] | None] = asyncio.Queue(maxsize=self.concurrency)
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.concurrency):
                    group.create_task(self._worker(queue, report))
                group.create_task(self._produce(calls, queue, report))
        except BaseExceptionGroup as e:
            # a bug, not a refusal: surface the first error itself, not "unhandled errors in a TaskGroup"
            raise e.exceptions[0] from None
        if self._stop_reason is not None:
            report.stopped(self._stop_reason)

    async def _produce(self, calls: AsyncIterator[Call], queue: asyncio.Queue[list[Call] | None], report: DeliveryReport) -> None:
        limit = self.max_batch_bytes - ENVELOPE_BYTES
        batch: list[Call] = []
        size = 0
        max_calls, max_call_bytes = self.max_batch_calls, self.max_call_bytes
        async for chunk in in_chunks(calls):
            if self._stop_reason is not None:
                break
            for call in chunk:
                n = len(call.body)
                if n > max_call_bytes:
                    report.rejected(call, f"the call is {n:,} bytes, more than max_call_bytes ({max_call_bytes:,})")
                    continue
                # the size is checked before adding, so a batch never goes over (a comma per call)
                if batch and (len(batch) >= max_calls or size + n + 1 > limit):
                    await queue.put(batch)
                    batch, size = [], 0
                    if self._stop_reason is not None:
                        break
                batch.append(call)
                size += n + 1
        if batch and self._stop_reason is None:
            await queue.put(batch)
        # not in a finally: if this fails, the task group cancels the workers instead
        for _ in range(self.concurrency):
            await queue.put(None)

    async def _worker(self, queue: asyncio.Queue[list[Call] | None], report: DeliveryReport) -> None:
        while True:
            batch = await queue.get()
            if batch is None:
                return
            if self._stop_reason is None:  # after a stop, queued batches are dropped unacknowledged
                await self._send(batch, report)

    async def _send(self, calls: list[Call], report: DeliveryReport) -> None:
        attempt = 0
        while self._stop_reason is None:
            if not await self._wait_turn(len(calls)):
                return
            answer = await self.attempt(calls)
            if answer.action is Action.ACK:
                self._given_up_in_a_row = self._refused_in_a_row = 0
                await self._acknowledge(calls, report)
                return
            if answer.action is Action.STOP:
                self.stop(answer.detail)
                return
            if answer.action is Action.SPLIT:
                self._refused_in_a_row += 1
                if self._refused_in_a_row > self.refusal_limit:
                    # one bad call among good ones is isolated in far fewer refusals (the good
                    # halves are accepted on the way); this many in a row means every call is refused
                    self.stop(
                        f"destination {self.name}: {self._refused_in_a_row:,} requests in a row were refused without one being "
                        f"accepted (last: {answer.detail}); it refuses every call: stopped for this run, the next run sends what is left"
                    )
                    return
                if len(calls) == 1:
                    report.rejected(calls[0], answer.detail)
                    return
                middle = len(calls) // 2
                await self._send(calls[:middle], report)
                await self._send(calls[middle:], report)
                return
            if answer.pause is not None:
                # the server said how long: every worker waits, and it is not an attempt
                self._resume_at = max(self._resume_at, time.monotonic() + answer.pause)
                log.info("destination paused", extra={"destination": self.name, "seconds": answer.pause, "status": answer.status})
                continue
            attempt += 1
            if attempt >= self.max_attempts:
                for call in calls:
                    report.rejected(call, f"gave up after {attempt} attempts: {answer.detail}")
                self._given_up_in_a_row += 1
                if self._given_up_in_a_row >= GIVE_UP_STOP:
                    # down for good, it seems: retrying every other batch would only spend the
                    # deadline; the next run sends what is left
                    self.stop(
                        f"destination {self.name}: {GIVE_UP_STOP} batches in a row failed after {attempt} attempts each "
                        f"(last: {answer.detail}); stopped for this run, the next run sends what is left"
                    )
                return
            delay = backoff(attempt, self.backoff_base, self.backoff_cap)
            if self._past_deadline(time.monotonic() + delay):
                return
            log.debug("retrying", extra={"destination": self.name, "attempt": attempt, "delay": delay, "detail": redact(answer.detail)})
            await asyncio.sleep(delay)

    async def _wait_turn(self, calls: int) -> bool:
        """Wait out a pause and the rate limits; False when the deadline passes first."""
        while (wait := self._resume_at - time.monotonic()) > 0:
            if self._past_deadline(self._resume_at):
                return False
            await asyncio.sleep(wait)
            if self._stop_reason is not None:
                return False
        await self._pacer.wait(calls)
        return not self._past_deadline(time.monotonic()) and self._stop_reason is None

    def _past_deadline(self, instant: float) -> bool:
        if self.deadline is None or instant < self.deadline:
            return False
        self.stop(
            f"destination {self.name}: the delivery deadline (settings.delivery_deadline) passed with calls still "
            "unacknowledged; the next run sends them"
        )
        return True

    def stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            # a URL or an answer may hold a secret taken from the environment (a webhook path token)
            log.warning("destination stopped", extra={"destination": self.name, "reason": redact(reason)})

    async def _acknowledge(self, calls: list[Call], report: DeliveryReport) -> None:
        # one batch at a time per destination: the report's log is appended and fsynced in order
        assert self._ack_lock is not None
        async with self._ack_lock:
            await asyncio.to_thread(report.acknowledged, calls)

    # -- one attempt ----------------------------------------------------------------------------
    async def attempt(self, calls: Sequence[Call]) -> Answer:
        request = self.build_request(calls)
        try:
            response = await self.client.post(request.url, content=request.content, headers=request.headers)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as e:
            return Answer(Action.STOP, f"destination {self.name}: cannot send to {request.url}: {e}")
        except httpx.TimeoutException as e:
            return Answer(Action.RETRY, f"{request.url} timed out ({type(e).__name__})")
        except httpx.TransportError as e:
            return Answer(Action.RETRY, f"cannot reach {request.url}: {type(e).__name__}: {e}")
        return self.judge(request.url, response)

    def judge(self, url: str, response: httpx.Response) -> Answer:
        status = response.status_code
        action = classify(status)
        body = response.text[:REASON_CHARS].strip()
        detail = f"HTTP {status}" + (f": {body}" if body else "")
        if action is Action.STOP:
            detail = self.stop_message(url, response)
        pause = retry_after(response.headers.get("retry-after")) if status in (429, 503) else None
        return Answer(action, detail, status, pause)

    def stop_message(self, url: str, response: httpx.Response, *, running: bool = True) -> str:
        """Why a refusal stops this destination and what to fix (``running``: said during a run)."""
        status = response.status_code
        then = ". Nothing more is sent to it this run" if running else ""
        body = response.text[:200].strip()
        said = f" ({body})" if body else ""
        where = f"destination {self.name}: POST {url} answered HTTP {status}{said}"
        if 300 <= status < 400:
            location = response.headers.get("location", "nowhere")
            return f"{where}, a redirect to {location}; redirects are not followed: set the URL to where it points"
        if status in (401, 403):
            return f"{where}: the credentials were refused; {self.auth_hint}{then}"
        if status in (404, 405, 410):
            return f"{where}: the URL is wrong; {self.url_hint}{then}"
        return f"{where}: the server does not support this request; check the URL{then}"

    url_hint: str = "check the url"

    # -- validate --connect ---------------------------------------------------------------------
    async def probe(self, method: str, url: str, *, content: bytes | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        """One request for ``check``; a network failure becomes a ``DeliveryError`` that says what to do."""
        from traits.errors import DeliveryError

        try:
            return await self.client.request(method, url, content=content, headers=headers)
        except httpx.TimeoutException:
            raise DeliveryError(
                redact(f"destination {self.name}: {url} did not answer within the timeout"), hint="check the URL and the network"
            ) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as e:
            raise DeliveryError(redact(f"destination {self.name}: {url} is not a usable URL: {e}")) from None
        except httpx.TransportError as e:
            raise DeliveryError(
                redact(f"destination {self.name}: cannot reach {url}: {e}"), hint="check the host name, the port and the network"
            ) from None


__all__ = ["ENVELOPE_BYTES", "Answer", "HttpDestination", "Request", "batch_envelope", "sent_at"]
