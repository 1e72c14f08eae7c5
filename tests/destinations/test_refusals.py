"""A collector that refuses everything is stopped after a bounded number of requests; one bad call is still isolated."""

from __future__ import annotations

import pytest
from engine_helpers import deliver, make_call, segment, webhook
from receiver import Received, Receiver, Reply

CALLS = 2_000


@pytest.mark.parametrize("status", [415, 402, 409, 422, 400])
def test_refusal_of_everything_stops_the_destination_whatever_the_number_of_calls(status: int) -> None:
    with Receiver(lambda _r: Reply(status, b'{"error":"unsupported"}')) as receiver:
        destination = segment(receiver.url)
        report = deliver(destination, [make_call(i) for i in range(CALLS)])
    requests = len(receiver.snapshot())
    # halving every batch down to single calls would take 2 * CALLS - 1 requests
    assert requests <= destination.refusal_limit + destination.concurrency, requests
    assert requests < 200
    assert report.acked == []
    assert len(report.stops) == 1
    assert "refuses every call" in report.stops[0]
    assert f"HTTP {status}" in report.stops[0]


def test_refusal_of_everything_is_bounded_for_single_call_webhooks_too() -> None:
    with Receiver(lambda _r: Reply(415)) as receiver:
        destination = webhook(receiver.url)  # batch_size 1: every request is one call
        report = deliver(destination, [make_call(i) for i in range(CALLS)])
    assert len(receiver.snapshot()) <= destination.refusal_limit + destination.concurrency
    assert "refuses every call" in report.stops[0]


@pytest.mark.parametrize("bad", [0, 777, 1_999])
def test_one_bad_call_among_good_ones_is_still_isolated(bad: int) -> None:
    def script(r: Received) -> Reply:
        return Reply(422, b'{"error":"bad trait"}') if any(c["userId"] == str(bad) for c in r.calls) else Reply()

    with Receiver(script) as receiver:
        report = deliver(segment(receiver.url), [make_call(i) for i in range(CALLS)])
    assert report.stops == []
    assert report.acked_keys == {str(i) for i in range(CALLS)} - {str(bad)}
    assert [c.key for c, _ in report.rejections] == [str(bad)]


def test_scattered_bad_calls_in_every_batch_are_each_isolated() -> None:
    bad = {str(i) for i in range(0, CALLS, 97)}

    def script(r: Received) -> Reply:
        return Reply(400) if any(c["userId"] in bad for c in r.calls) else Reply()

    with Receiver(script) as receiver:
        report = deliver(segment(receiver.url, max_batch_calls=100), [make_call(i) for i in range(CALLS)])
    assert report.stops == []
    assert {c.key for c, _ in report.rejections} == bad
    assert report.acked_keys == {str(i) for i in range(CALLS)} - bad
