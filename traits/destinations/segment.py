"""The Segment-compatible destination: ``POST {base}/v1/batch`` with HTTP Basic auth.

Works with Segment (US and EU) and with collectors that speak its HTTP API (RudderStack,
Jitsu, a local receiver) through ``endpoint:``. Limits are per destination and overridable:
``max_call_bytes`` (32 KB), ``max_batch_bytes`` (490 KB, under Segment's 500 KB) and
``max_batch_calls`` (2,500).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from traits.config.env import redact
from traits.destinations.base import Call
from traits.destinations.http import HttpDestination, Request, batch_envelope, sent_at
from traits.errors import DeliveryError


class SegmentDestination(HttpDestination):
    auth_hint = "check write_key (the source's write key, from the environment)"
    url_hint = "check region or endpoint (the base URL; /v1/batch is appended to it)"

    def __init__(self, name: str, config: Any, *, config_dir: Path, deadline: float | None = None) -> None:
        super().__init__(name, config, config_dir=config_dir, deadline=deadline)
        self.url = f"{config.base_url}/v1/batch"
        self.max_batch_calls = config.max_batch_calls
        self.max_batch_bytes = config.max_batch_bytes

    def default_headers(self) -> dict[str, str]:
        # Basic auth with the write key as user name and an empty password
        token = base64.b64encode(self.config.write_key.get_secret_value().encode() + b":").decode()
        return {**super().default_headers(), "Authorization": f"Basic {token}"}

    def build_request(self, calls: Sequence[Call]) -> Request:
        return Request(self.url, {}, batch_envelope(calls, sent_at()))

    async def check(self) -> str:
        """POST an empty batch: no trait data is sent, but the key is checked."""
        try:
            response = await self.probe("POST", self.url, content=batch_envelope([], sent_at()))
        finally:
            await self.aclose()
        status = response.status_code
        if 200 <= status < 300:
            return f"{self.url} accepted the write key (HTTP {status})"
        raise DeliveryError(redact(self.stop_message(self.url, response, running=False)))


__all__ = ["SegmentDestination"]
