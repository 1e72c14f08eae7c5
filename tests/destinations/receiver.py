"""A real HTTP receiver on 127.0.0.1 for destination tests, scriptable to misbehave.

A *script* is a function from each received request to a ``Reply``: answer with any status
and headers, answer late (past the client's read timeout), or drop the connection. The
receiver keeps every request; calls in a request it accepted (a 2xx reply by default, even
one the client gave up waiting for, as a real collector would) make up what it "holds".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"success":true}'
    headers: dict[str, str] = field(default_factory=dict)
    #: seconds to wait before answering (the calls are recorded on arrival, before the wait)
    delay: float = 0.0
    #: close the connection without answering
    drop: bool = False
    #: whether the calls count as received; by default when the status is 2xx
    accept: bool | None = None


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    calls: list[dict[str, Any]]
    accepted: bool = False
    reply: Reply | None = None
    at: float = 0.0


Script = Callable[[Received], Reply]


class NotStrictJson(AssertionError):
    """A body a strict JSON parser refuses (NaN, Infinity): no collector accepts it."""


def _refuse_constant(name: str) -> Any:
    raise NotStrictJson(f"a call body holds {name}, which is not JSON")


def parse_calls(body: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except NotStrictJson:
        raise
    except ValueError:
        return []
    if isinstance(data, dict) and isinstance(data.get("batch"), list):
        return list(data["batch"])
    return [data] if isinstance(data, dict) and "type" in data else []


class Receiver:
    def __init__(self, script: Script | None = None) -> None:
        self.script: Script = script or (lambda _r: Reply())
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.not_strict: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                receiver._handle(self, head=True)

            def do_POST(self) -> None:
                receiver._handle(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        if exc[0] is None:
            assert not self.not_strict, f"{len(self.not_strict)} body/bodies were not strict JSON: {self.not_strict[0][:300]!r}"

    # -- serving --------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, *, head: bool) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        try:
            calls = parse_calls(body)
        except NotStrictJson:
            with self.lock:
                self.not_strict.append(body)  # every body must be strict JSON: checked on exit
            calls = []
        request = Received(handler.path, {k.lower(): v for k, v in handler.headers.items()}, body, calls, at=time.monotonic())
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply = self.script(request)
            request.reply = reply
            request.accepted = (200 <= reply.status < 300) if reply.accept is None else reply.accept
            with self.lock:
                self.requests.append(request)
            if reply.delay:
                time.sleep(reply.delay)  # the server answering late, not the test waiting
            if reply.drop:
                handler.close_connection = True
                return
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(reply.body)))
            handler.end_headers()
            if not head:
                handler.wfile.write(reply.body)
        finally:
            with self.lock:
                self.in_flight -= 1

    # -- what it holds --------------------------------------------------------------------------
    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def accepted_calls(self) -> list[dict[str, Any]]:
        return [c for r in self.snapshot() if r.accepted for c in r.calls]

    def profiles(self, id_field: str = "userId") -> dict[str, dict[str, Any]]:
        """Each profile's traits after applying every accepted call in arrival order."""
        out: dict[str, dict[str, Any]] = {}
        for call in self.accepted_calls():
            out.setdefault(call[id_field], {}).update(call["traits"])
        return out

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            time.sleep(0.005)


def without_sent_at(call: dict[str, Any]) -> str:
    """A call's content for comparing redeliveries: everything but sentAt."""
    return json.dumps({k: v for k, v in call.items() if k != "sentAt"}, sort_keys=True)


def check_redeliveries(calls: list[dict[str, Any]]) -> int:
    """Assert every duplicate is a redelivery of the same messageId with the same content; return how many."""
    seen: dict[str, str] = {}
    duplicates = 0
    for call in calls:
        content = without_sent_at(call)
        previous = seen.setdefault(call["messageId"], content)
        if previous is not content:
            assert previous == content, f"messageId {call['messageId']} was reused for different content"
            duplicates += 1
    return duplicates
