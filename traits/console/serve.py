"""Serving the console's ASGI app with uvicorn: in a thread beside the scheduler, or alone.

The socket is bound before the thread starts, so a port in use is an ``OSError`` the caller
sees at once. uvicorn installs no signal handlers outside the main thread, so the daemon's
SIGTERM/SIGHUP handling stays its own; ``stop`` asks the server to finish and waits for it.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from typing import Any

from starlette.types import ASGIApp

log = logging.getLogger("traits.console")

#: how long ``start`` waits for uvicorn to accept connections, and ``stop`` for it to end
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class AppServer:
    """``app`` on host:port, served by uvicorn in a daemon thread."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        import uvicorn

        self.sock = bind(host, port)
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=2, server_header=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="traits-http", daemon=True)
        self.error: BaseException | None = None

    def _serve(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as e:
            self.error = e
            log.exception("the HTTP server stopped")

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the HTTP server on {self.address} did not start: {self.error or 'timed out'}")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(STOP_TIMEOUT)
        self.sock.close()

    def serve_forever(self) -> None:
        """Serve (in the server's thread) until SIGTERM or SIGINT, then stop and return.

        The signals are handled here, not by uvicorn, which would raise them again once it has
        stopped and so end the process with the signal instead of exit code 0.
        """
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not stop.wait(0.5):
                if not self.thread.is_alive():
                    raise OSError(f"the HTTP server on {self.address} stopped: {self.error or 'see the log'}")
            log.info("console stopping")
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def console_app(config_provider: Any, host: str, live: Any = None, health: Any = None, metrics: Any = None) -> ASGIApp:
    """The console app for ``host``, with access read from the environment (logged once)."""
    from traits.console.app import create_app
    from traits.console.auth import HOW_TO_ENABLE, Access
    from traits.console.views import Console

    access = Access.from_env(host)
    if not access.enabled:
        log.warning("%s", HOW_TO_ENABLE)
    else:
        log.info("console access: %s", access.describe())
    return create_app(Console(config_provider, live), access, health, metrics)
