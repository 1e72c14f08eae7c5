"""Webhook bodies and Standard Webhooks signatures, checked with the reference implementation."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from engine_helpers import deliver, make_call, webhook
from receiver import Received, Receiver, Reply
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from traits.destinations.webhook import batch_id
from traits.errors import DeliveryError

KEY = b"0123456789abcdef0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(KEY).decode()


def _verify_all(receiver: Receiver, verifier: Webhook) -> list[Received]:
    requests = receiver.snapshot()
    assert requests
    for r in requests:
        verifier.verify(r.body, r.headers)  # raises when the signature is wrong
    return requests


def test_single_calls_are_signed_with_their_message_id() -> None:
    calls = [make_call(i) for i in range(5)]
    with Receiver() as receiver:
        report = deliver(webhook(receiver.url + "/hook", secret=WHSEC, headers={"X-Team": "growth"}), calls)
    assert len(report.acked) == 5
    requests = _verify_all(receiver, Webhook(WHSEC))
    by_id = {r.headers["webhook-id"]: json.loads(r.body) for r in requests}
    assert set(by_id) == {c.message_id for c in calls}
    body = by_id["m-1"]
    assert body["userId"] == "1"
    assert "sentAt" in body
    assert requests[0].path == "/hook"
    assert requests[0].headers["x-team"] == "growth"
    assert requests[0].headers["webhook-signature"].startswith("v1,")


def test_batches_are_signed_with_a_deterministic_batch_id() -> None:
    calls = [make_call(i) for i in range(7)]
    with Receiver() as receiver:
        deliver(webhook(receiver.url, secret=WHSEC, batch_size=3), calls)
    requests = _verify_all(receiver, Webhook(WHSEC))
    assert sorted(len(r.calls) for r in requests) == [1, 3, 3]
    by_message = {c.message_id: c for c in calls}
    for r in requests:
        assert set(json.loads(r.body)) == {"batch", "sentAt"}
        assert r.headers["webhook-id"] == batch_id([by_message[c["messageId"]] for c in r.calls])
    assert batch_id(calls[:3]) == batch_id(calls[:3]) != batch_id(calls[1:4])


def test_a_plain_secret_is_used_as_its_bytes() -> None:
    with Receiver() as receiver:
        deliver(webhook(receiver.url, secret="plain-text-secret"), [make_call(1)])
    _verify_all(receiver, Webhook(b"plain-text-secret"))
    with pytest.raises(WebhookVerificationError):
        _verify_all(receiver, Webhook(WHSEC))


def test_retries_are_signed_afresh() -> None:
    answers = iter([Reply(500), Reply(503)])
    with Receiver(lambda _r: next(answers, Reply())) as receiver:
        report = deliver(webhook(receiver.url, secret=WHSEC), [make_call(1)])
    assert len(report.acked) == 1
    requests = _verify_all(receiver, Webhook(WHSEC))
    assert len(requests) == 3
    assert len({r.headers["webhook-id"] for r in requests}) == 1  # the receiver can deduplicate


def test_check_is_a_reachability_probe_without_trait_data() -> None:
    with Receiver(lambda _r: Reply(405)) as receiver:
        assert "reachable" in asyncio.run(webhook(receiver.url).check())
    assert receiver.snapshot()[0].body == b""
    with Receiver(lambda _r: Reply(403)) as receiver, pytest.raises(DeliveryError, match="hook"):
        asyncio.run(webhook(receiver.url).check())
