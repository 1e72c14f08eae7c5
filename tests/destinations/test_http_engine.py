"""The HTTP engine against a real local receiver: every row of the retry table, limits, pacing."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator

import pytest
from engine_helpers import Report, deliver, make_call, segment
from receiver import Received, Receiver, Reply

from traits.destinations.base import Call
from traits.destinations.http import ENVELOPE_BYTES
from traits.errors import DeliveryError


def test_batches_stay_within_calls_and_bytes_and_carry_the_envelope() -> None:
    calls = [make_call(i, blob="x" * 300) for i in range(200)]
    with Receiver() as receiver:
        report = deliver(segment(receiver.url, max_batch_calls=25, max_batch_bytes=5_000), calls)
    requests = receiver.snapshot()
    assert report.acked_keys == {c.key for c in calls}
    assert all(len(r.calls) <= 25 and len(r.body) <= 5_000 for r in requests)
    assert sum(len(r.calls) for r in requests) == 200
    body = json.loads(requests[0].body)
    assert set(body) == {"batch", "sentAt"}
    assert requests[0].path == "/v1/batch"
    assert requests[0].headers["authorization"] == "Basic " + base64.b64encode(b"test-key:").decode()
    assert len(b'{"batch":[],"sentAt":"2026-01-01T00:00:00.000Z"}') == ENVELOPE_BYTES


def test_an_oversized_call_is_rejected_without_sending_it() -> None:
    calls = [make_call(1), make_call("big", blob="x" * 2_000), make_call(2)]
    with Receiver() as receiver:
        report = deliver(segment(receiver.url, max_call_bytes=1_000), calls)
    assert report.acked_keys == {"1", "2"}
    assert [c.key for c, _ in report.rejections] == ["big"]
    assert "max_call_bytes" in report.rejections[0][1]
    assert all(c["userId"] != "big" for c in receiver.accepted_calls())


def test_400_isolates_the_one_bad_call() -> None:
    def script(r: Received) -> Reply:
        if any(c["userId"] == "13" for c in r.calls):
            return Reply(400, b'{"error":"trait too long"}')
        return Reply()

    with Receiver(script) as receiver:
        report = deliver(segment(receiver.url, max_batch_calls=16), [make_call(i) for i in range(50)])
    assert report.acked_keys == {str(i) for i in range(50)} - {"13"}
    assert [(c.key, reason) for c, reason in report.rejections] == [("13", 'HTTP 400: {"error":"trait too long"}')]
    assert report.stops == []


def test_413_splits_until_batches_fit() -> None:
    with Receiver(lambda r: Reply(413) if len(r.calls) > 3 else Reply()) as receiver:
        report = deliver(segment(receiver.url, max_batch_calls=20), [make_call(i) for i in range(40)])
    assert len(report.acked) == 40
    assert report.rejections == []


@pytest.mark.parametrize("status", [401, 403, 404])
def test_auth_and_url_refusals_stop_at_once(status: int) -> None:
    with Receiver(lambda _r: Reply(status, b"Invalid write key")) as receiver:
        report = deliver(segment(receiver.url, max_batch_calls=5, concurrency=1), [make_call(i) for i in range(50)])
    assert report.acked == []
    assert len(receiver.snapshot()) == 1  # nothing more was sent after the refusal
    assert len(report.stops) == 1
    assert "destination seg" in report.stops[0]
    assert ("write_key" if status != 404 else "endpoint") in report.stops[0]
    assert "test-key" not in report.stops[0]


def test_a_redirect_is_a_config_error_and_not_followed() -> None:
    with Receiver(lambda _r: Reply(301, headers={"Location": "https://elsewhere.example/v1/batch"})) as receiver:
        report = deliver(segment(receiver.url, concurrency=1), [make_call(i) for i in range(5)])
    assert report.acked == []
    assert "redirect" in report.stops[0]
    assert "elsewhere.example" in report.stops[0]
    assert len(receiver.snapshot()) == 1


def test_5xx_timeouts_and_dropped_connections_are_retried() -> None:
    failures = iter([Reply(500), Reply(502), Reply(delay=1.0), Reply(drop=True, accept=False), Reply(408), Reply(429)])

    def script(_r: Received) -> Reply:
        return next(failures, Reply())

    with Receiver(script) as receiver:
        report = deliver(segment(receiver.url, concurrency=1, max_batch_calls=10), [make_call(i) for i in range(10)])
    assert len(report.acked) == 10
    assert report.rejections == []
    assert len(receiver.snapshot()) == 7
    stamps = {json.loads(r.body)["sentAt"] for r in receiver.snapshot()}
    assert len(stamps) > 1  # sentAt is set again at each attempt


def test_gives_up_after_max_attempts_and_rejects_the_calls() -> None:
    with Receiver(lambda _r: Reply(503)) as receiver:
        report = deliver(segment(receiver.url, max_attempts=3, concurrency=1), [make_call(i) for i in range(4)])
    assert report.acked == []
    assert len(receiver.snapshot()) == 3
    assert len(report.rejections) == 4
    assert "gave up after 3 attempts: HTTP 503" in report.rejections[0][1]


def test_a_destination_that_stays_down_stops_after_three_batches_give_up() -> None:
    with Receiver(lambda _r: Reply(500)) as receiver:
        report = deliver(segment(receiver.url, max_attempts=2, concurrency=1, max_batch_calls=1), [make_call(i) for i in range(20)])
    assert len(receiver.snapshot()) == 3 * 2
    assert len(report.rejections) == 3
    assert "3 batches in a row" in report.stops[0]


def test_retry_after_pauses_the_whole_destination_without_using_an_attempt() -> None:
    answered: list[tuple[float, str]] = []

    def script(r: Received) -> Reply:
        answered.append((r.at, r.calls[0]["userId"]))
        return Reply(429, headers={"Retry-After": "1"}) if len(answered) == 1 else Reply()

    with Receiver(script) as receiver:
        # max_attempts 1: had the 429 counted as an attempt, the batch would be given up
        report = deliver(segment(receiver.url, max_attempts=1, concurrency=4, max_batch_calls=1), [make_call(i) for i in range(8)])
    assert len(report.acked) == 8
    (first, paused), rest = answered[0], answered[1:]
    # the paused batch is sent again only once the pause is over, by the worker that got the 429
    again = [t for t, key in rest if key == paused]
    assert len(again) == 1
    assert again[0] - first >= 0.95, round(again[0] - first, 3)
    # the pause holds the whole destination: of the requests for calls 4-7, only those another
    # worker had already begun to send before the 429 was read (at most concurrency - 1 = 3)
    # may go out before it ends; a lower bound the pause guarantees, however loaded the machine
    later = [t for t, key in rest if int(key) >= 4]
    assert len(later) == 4
    early = [round(t - first, 3) for t in later if t - first < 0.95]
    assert len(early) <= 3, early
    assert max(later) - first >= 0.95


def test_the_deadline_stops_retrying() -> None:
    with Receiver(lambda _r: Reply(500)) as receiver:
        destination = segment(receiver.url, deadline=time.monotonic() + 0.3, retry_backoff=0.05, retry_backoff_max=0.05, max_attempts=100)
        report = deliver(destination, [make_call(i) for i in range(3)])
    # the deadline, not the attempts, ended it: far fewer requests than 100 attempts would make
    assert len(receiver.snapshot()) < 100
    assert report.rejections == []  # nothing ran out of attempts
    assert report.acked == []
    assert "delivery deadline" in report.stops[0]


def test_in_flight_requests_never_exceed_concurrency() -> None:
    with Receiver(lambda _r: Reply(delay=0.02)) as receiver:
        report = deliver(segment(receiver.url, concurrency=3, max_batch_calls=2), [make_call(i) for i in range(60)])
    assert len(report.acked) == 60
    assert receiver.max_in_flight == 3


def test_calls_are_pulled_only_as_capacity_allows() -> None:
    pulled = 0

    async def endless() -> AsyncIterator[Call]:
        nonlocal pulled
        for i in range(1_000_000):
            pulled += 1
            yield make_call(i)

    # a refusing receiver stops the destination at the first answer; it must not have read ahead
    with Receiver(lambda _r: Reply(401, delay=0.2)) as receiver:
        report = deliver(segment(receiver.url, concurrency=2, max_batch_calls=10), endless())
    assert report.stops
    # 2 batches in flight, 2 queued, 1 full waiting for room, and the calls read past it
    assert pulled <= (2 + 2 + 1) * 10 + 2
    assert len(receiver.snapshot()) <= 2


def test_rate_limit_requests_per_second() -> None:
    with Receiver() as receiver:
        # one worker on one kept-alive connection: arrivals follow the pacer's slots (several
        # workers would each open a connection, and a late first arrival would shrink the span)
        deliver(segment(receiver.url, rate_limit_rps=20, max_batch_calls=1, concurrency=1), [make_call(i) for i in range(6)])
    times = [r.at for r in receiver.snapshot()]
    assert times[-1] - times[0] >= 0.22  # 5 gaps of 1/20 s, less the arrival jitter


def test_check_accepts_a_good_key_and_names_a_bad_one() -> None:
    with Receiver() as receiver:
        assert "accepted" in asyncio.run(segment(receiver.url).check())
    assert json.loads(receiver.snapshot()[0].body)["batch"] == []  # no trait data was sent
    with Receiver(lambda _r: Reply(401)) as receiver, pytest.raises(DeliveryError, match="write_key"):
        asyncio.run(segment(receiver.url).check())
    with pytest.raises(DeliveryError, match="cannot reach"):
        asyncio.run(segment("http://127.0.0.1:9").check())


def test_unreachable_host_is_retried_then_given_up() -> None:
    report: Report = deliver(segment("http://127.0.0.1:9", max_attempts=2), [make_call(1)])
    assert report.acked == []
    assert "cannot reach" in report.rejections[0][1]
