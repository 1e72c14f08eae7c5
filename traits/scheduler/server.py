"""The daemon's HTTP side: ``/healthz``, ``/metrics`` and the read-only console on one address.

One ASGI app (``traits.console.app``) served by uvicorn in a thread of the daemon's process;
the scheduler runs in threads of its own, so serving pages never holds up a due run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from traits.config.models import Config
from traits.console.app import METRICS_CONTENT_TYPE
from traits.console.serve import AppServer, console_app

log = logging.getLogger("traits.daemon")

__all__ = ["METRICS_CONTENT_TYPE", "StatusServer"]


class StatusServer:
    """Serves ``health()`` (a healthy flag and a JSON body), ``metrics()`` and, given ``config``, the console."""

    def __init__(
        self,
        host: str,
        port: int,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        metrics: Callable[[], bytes],
        config: Callable[[], Config] | None = None,
    ) -> None:
        if config is not None:
            app = console_app(config, host, live=lambda: health()[1], health=health, metrics=metrics)
        else:
            from traits.console.app import create_app
            from traits.console.auth import Access

            app = create_app(None, Access.from_env(host), health, metrics)
        self.health = health
        self.metrics = metrics
        self.console = config is not None
        self._server = AppServer(app, host, port)

    @property
    def address(self) -> str:
        return self._server.address

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()
