"""The retry policy pieces, alone: status classes, Retry-After, backoff, pacing."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from traits.destinations.policy import Action, Pacer, backoff, classify, retry_after


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (200, Action.ACK), (202, Action.ACK), (204, Action.ACK),
        (301, Action.STOP), (307, Action.STOP), (308, Action.STOP),
        (400, Action.SPLIT), (413, Action.SPLIT),
        (401, Action.STOP), (403, Action.STOP), (404, Action.STOP),
        (408, Action.RETRY), (429, Action.RETRY), (500, Action.RETRY), (502, Action.RETRY), (503, Action.RETRY), (504, Action.RETRY),
        (501, Action.STOP), (505, Action.STOP),
    ],
)
def test_classify_follows_the_protocol_table(status: int, action: Action) -> None:
    assert classify(status) is action


def test_retry_after_seconds_are_clamped() -> None:
    assert retry_after("7") == 7.0
    assert retry_after("0") == 1.0
    assert retry_after("100000") == 300.0
    assert retry_after(None) is None
    assert retry_after("soon") is None


def test_retry_after_http_date() -> None:
    now = time.time()
    seconds = retry_after(formatdate(now + 30, usegmt=True), now=now)
    assert seconds is not None
    assert 29 <= seconds <= 31
    assert retry_after(formatdate(now - 30, usegmt=True), now=now) == 1.0


def test_backoff_is_full_jitter_under_the_cap() -> None:
    samples = [backoff(3, 0.5, 60) for _ in range(2_000)]
    assert all(0 <= s <= 4.0 for s in samples)
    assert max(samples) > 3.0  # spread over the whole range, not a fixed delay
    assert all(0 <= backoff(20, 0.5, 60) <= 60 for _ in range(200))


def test_pacer_spaces_requests_and_calls() -> None:
    pacer = Pacer(rps=10, cps=None)
    starts = [pacer.reserve(1) for _ in range(5)]
    assert starts[-1] - starts[0] == pytest.approx(0.4, abs=0.01)
    calls = Pacer(rps=None, cps=100)
    first, second = calls.reserve(50), calls.reserve(50)
    assert second - first == pytest.approx(0.5, abs=0.01)
