"""Calls, a recording report and configs for driving destinations directly."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from traits.config.models import SegmentDestination as SegmentConfig
from traits.config.models import WebhookDestination as WebhookConfig
from traits.destinations.base import Call, Destination
from traits.destinations.segment import SegmentDestination
from traits.destinations.webhook import WebhookDestination

FAST: dict[str, Any] = {"connect_timeout": 0.5, "timeout": 0.5, "retry_backoff": 0.001, "retry_backoff_max": 0.01}


def make_call(i: int | str, **traits: Any) -> Call:
    key = str(i) if not isinstance(i, str) else i
    body = {"type": "identify", "userId": key, "traits": traits or {"n": key}, "messageId": f"m-{key}", "timestamp": "2026-01-01T00:00:00.000Z"}
    return Call(key=key, change="added", message_id=f"m-{key}", body=json.dumps(body, separators=(",", ":")).encode())


class Report:
    def __init__(self) -> None:
        self.acked: list[Call] = []
        self.rejections: list[tuple[Call, str]] = []
        self.stops: list[str] = []
        self._lock = threading.Lock()

    def acknowledged(self, calls: Any) -> None:
        with self._lock:
            self.acked.extend(calls)

    def rejected(self, call: Call, reason: str) -> None:
        self.rejections.append((call, reason))

    def stopped(self, reason: str) -> None:
        self.stops.append(reason)

    @property
    def acked_keys(self) -> set[str]:
        return {c.key for c in self.acked}


def segment(url: str, deadline: float | None = None, **options: Any) -> SegmentDestination:
    config = SegmentConfig(type="segment", write_key="test-key", endpoint=url, **{**FAST, **options})
    return SegmentDestination("seg", config, config_dir=Path("."), deadline=deadline)


def webhook(url: str, **options: Any) -> WebhookDestination:
    config = WebhookConfig(type="webhook", url=url, **{**FAST, **options})
    return WebhookDestination("hook", config, config_dir=Path("."))


async def _iterate(calls: Iterable[Call]) -> AsyncIterator[Call]:
    for call in calls:
        yield call


def deliver(destination: Destination, calls: Iterable[Call] | AsyncIterator[Call]) -> Report:
    report = Report()

    async def main() -> None:
        source = calls if isinstance(calls, AsyncIterator) else _iterate(calls)
        try:
            await destination.deliver(source, report)
        finally:
            await destination.aclose()

    asyncio.run(main())
    return report
