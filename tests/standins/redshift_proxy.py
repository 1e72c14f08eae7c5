"""A Redshift stand-in: a wire proxy in front of a local Postgres.

``redshift-connector`` speaks the Postgres protocol with a few Redshift habits that stock
Postgres refuses. This proxy sits between them and only rewrites those:

- the SSL request is answered ``N`` (no TLS), as a server without TLS would;
- Redshift-only startup parameters (``client_protocol_version``, ``driver_version``, …) are
  dropped, since Postgres rejects unknown ones with a FATAL error;
- the ``server_version`` parameter status says ``8.0.2``, what Redshift reports.

Everything else (auth, queries, errors, cursors) passes through untouched, so the real driver
and the real warehouse code run against a real server. Test-only.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SSL_REQUEST = 80877103
GSS_REQUEST = 80877104
PROTOCOL_3 = 196608
KEEP = {"user", "database", "application_name", "options", "replication", "client_encoding", "DateStyle", "TimeZone"}
SERVER_VERSION = b"8.0.2"


async def _startup(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
    while True:
        head = await reader.readexactly(8)
        length, code = struct.unpack("!ii", head)
        body = await reader.readexactly(length - 8)
        if code in (SSL_REQUEST, GSS_REQUEST):
            writer.write(b"N")
            await writer.drain()
            continue
        if code != PROTOCOL_3:
            return None
        parts = body.split(b"\x00")
        params = {}
        for key, value in zip(parts[0::2], parts[1::2], strict=False):
            if key and key.decode() in KEEP:
                params[key] = value
        payload = struct.pack("!i", PROTOCOL_3) + b"".join(k + b"\x00" + v + b"\x00" for k, v in params.items()) + b"\x00"
        return struct.pack("!i", len(payload) + 4) + payload


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def _server_to_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy messages, rewriting the server_version parameter status."""
    try:
        while True:
            head = await reader.readexactly(5)
            kind, length = head[:1], struct.unpack("!i", head[1:])[0]
            body = await reader.readexactly(length - 4)
            if kind == b"S" and body.startswith(b"server_version\x00"):
                body = b"server_version\x00" + SERVER_VERSION + b"\x00"
                head = kind + struct.pack("!i", len(body) + 4)
            writer.write(head + body)
            if reader.at_eof() or len(reader._buffer) == 0:  # type: ignore[attr-defined]  # flush when caught up
                await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


class RedshiftProxy:
    def __init__(self, upstream_host: str = "127.0.0.1", upstream_port: int = 5432) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="redshift-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            startup = await _startup(reader, writer)
            if startup is None:
                writer.close()
                return
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            writer.close()
            return
        up_writer.write(startup)
        await up_writer.drain()
        try:
            await asyncio.gather(_pipe(reader, up_writer), _server_to_client(up_reader, writer))
        except asyncio.CancelledError:  # the proxy is stopping: drop the connection quietly
            writer.close()
            up_writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def start(self) -> RedshiftProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the Redshift proxy did not start within 10 s")
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@contextmanager
def redshift_proxy(upstream_host: str = "127.0.0.1", upstream_port: int = 5432) -> Iterator[RedshiftProxy]:
    proxy = RedshiftProxy(upstream_host, upstream_port).start()
    try:
        yield proxy
    finally:
        proxy.stop()
