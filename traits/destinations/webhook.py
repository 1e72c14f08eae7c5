"""The webhook destination: ``POST url`` with one call, or ``{"batch": [...]}``, signed per
Standard Webhooks when a secret is set.

Signing (https://www.standardwebhooks.com): ``webhook-id`` is the call's messageId (for a
batch, a UUIDv5 over its messageIds, so a resent batch keeps its id), ``webhook-timestamp``
the unix time of this attempt, and ``webhook-signature`` is
``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``. A secret written
``whsec_<base64>`` is base64-decoded to get the key; any other secret is used as its UTF-8
bytes. A single call carries ``sentAt`` itself; a batch carries it on the envelope.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from traits.config.env import redact
from traits.destinations.base import Call
from traits.destinations.http import HttpDestination, Request, batch_envelope, sent_at
from traits.errors import ConfigError, DeliveryError
from traits.pipeline.payloads import MESSAGE_NAMESPACE

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: ``whsec_`` secrets are base64, others are used as they are."""
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        try:
            return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except ValueError:
            raise ConfigError("a webhook secret starting with whsec_ must be base64 after the prefix") from None
    return secret.encode()


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def batch_id(calls: Sequence[Call]) -> str:
    """A deterministic id for a batch: the same calls give the same id, so receivers can dedupe."""
    return "batch_" + str(uuid.uuid5(MESSAGE_NAMESPACE, "\x1f".join(c.message_id for c in calls)))


class WebhookDestination(HttpDestination):
    auth_hint = "check the secret and the headers the receiver expects"

    def __init__(self, name: str, config: Any, *, config_dir: Path, deadline: float | None = None) -> None:
        super().__init__(name, config, config_dir=config_dir, deadline=deadline)
        self.url: str = config.url
        self.max_batch_calls = config.batch_size
        self.max_batch_bytes = config.max_batch_bytes
        self._key = secret_key(config.secret.get_secret_value()) if config.secret is not None else None

    def default_headers(self) -> dict[str, str]:
        extra = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        return {**super().default_headers(), **extra}

    def build_request(self, calls: Sequence[Call]) -> Request:
        stamp = sent_at()
        if self.max_batch_calls == 1 and len(calls) == 1:
            call = calls[0]
            body = call.body[:-1] + b',"sentAt":"' + stamp.encode() + b'"}'
            msg_id = call.message_id
        else:
            body = batch_envelope(calls, stamp)
            msg_id = batch_id(calls)
        headers: dict[str, str] = {}
        if self._key is not None:
            now = int(time.time())
            headers = {"webhook-id": msg_id, "webhook-timestamp": str(now), "webhook-signature": sign(self._key, msg_id, now, body)}
        return Request(self.url, headers, body)

    async def check(self) -> str:
        """A HEAD request: shows the URL is reachable without sending trait data.

        Receivers usually answer HEAD with 405 (only POST is routed); that still proves the host,
        port and TLS work. 401/403 means the configured headers were refused; 404 that the path is
        wrong.
        """
        try:
            response = await self.probe("HEAD", self.url)
        finally:
            await self.aclose()
        status = response.status_code
        if status in (401, 403, 404, 410) or 300 <= status < 400:
            raise DeliveryError(redact(self.stop_message(self.url, response, running=False)))
        if status >= 500:
            raise DeliveryError(redact(f"destination {self.name}: {self.url} is reachable but answered HTTP {status}"), hint="check the receiver")
        return f"{self.url} is reachable (HTTP {status} to HEAD; no trait data sent)"


__all__ = ["WebhookDestination", "batch_id", "secret_key", "sign"]
