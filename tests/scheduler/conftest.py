"""A config directory on a DuckDB file, and a daemon run as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import PG_DSN, require_postgres
from traits.state.base import StateStore
from traits.state.local import LocalStateStore
from traits.state.records import RunRecord

ROOT = Path(__file__).resolve().parents[2]
USERS = 20
#: about 2 s of DuckDB work on 2 cores: a trait that is still running when others are due
SLOW_SQL = "select 'u' || (i % 20) as user_id, max(hash(i)) % 1000 as score from range(60000000) t(i) group by 1"


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def trait_yaml(name: str, sql: str, destination: str, schedule: str = "every 2s") -> str:
    return f"""  {name}:
    kind: user
    source: demo
    sql: "{sql}"
    destinations: [{destination}]
    schedule: {schedule}
"""


class Project:
    """A config directory: a DuckDB warehouse, file destinations, traits."""

    def __init__(self, root: Path) -> None:
        self.root = root
        #: a ``postgresql://`` state store the daemons are given (TRAITS_STATE), else local
        self.state_dsn: str | None = None
        con = duckdb.connect(str(root / "demo.duckdb"))
        con.execute(f"create table users as select 'u' || i as user_id, 'plan' || (i % 3) as plan from range({USERS}) t(i)")
        con.close()
        (root / "base.yml").write_text(
            "sources:\n  demo: {type: duckdb, path: demo.duckdb}\n"
            "destinations:\n"
            "  out_a: {type: file, path: out/a.jsonl}\n  out_b: {type: file, path: out/b.jsonl}\n"
            "  out_c: {type: file, path: out/c.jsonl}\n  out_slow: {type: file, path: out/slow.jsonl}\n"
            "settings: {jitter: 0s, concurrency: 3}\n"
        )

    def traits(self, body: str) -> None:
        (self.root / "traits.yml").write_text("traits:\n" + body)

    def state(self) -> StateStore:
        if self.state_dsn:
            from traits.state.postgres import PostgresStateStore

            return PostgresStateStore(self.state_dsn, work_dir=self.root / ".traits")
        return LocalStateStore(self.root / ".traits")

    def runs(self, trait: str | None = None) -> list[RunRecord]:
        store = self.state()
        try:
            return list(reversed(store.runs(trait, limit=10_000)))  # oldest first
        finally:
            store.close()

    def finished(self, trait: str) -> list[RunRecord]:
        return [r for r in self.runs(trait) if r.status != "running"]

    def sent_ids(self, destination_file: str) -> set[str]:
        path = self.root / "out" / destination_file
        if not path.exists():
            return set()
        return {json.loads(line)["userId"] for line in path.read_text().splitlines() if line}


class Daemon:
    """``run_daemon`` in a subprocess, logging JSON lines to a file."""

    def __init__(self, project: Project, env: dict[str, str] | None = None, name: str = "daemon") -> None:
        self.port = free_port()
        self.log_path = project.root / f"{name}-{time.monotonic_ns()}.log"
        code = (
            "import sys; from pathlib import Path; from traits.scheduler.daemon import run_daemon; "
            f"sys.exit(run_daemon(Path({str(project.root)!r}), '127.0.0.1', {self.port}))"
        )
        environ = {**os.environ, "TRAITS_MIN_INTERVAL": "1", "PYTHONPATH": str(ROOT), **(env or {})}
        environ.pop("TRAITS_STATE", None)
        if project.state_dsn:
            environ["TRAITS_STATE"] = project.state_dsn
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-c", code], stderr=log, stdout=log, env=environ, cwd=project.root)
        wait_for(lambda: self.get("/healthz") is not None or self.process.poll() is not None, "the daemon to serve /healthz", 20)
        assert self.process.poll() is None, self.log_text()

    def get(self, path: str) -> tuple[int, bytes] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as e:
            return int(e.code), bytes(e.read())
        except OSError:
            return None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logs(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append({"message": line, "level": "RAW"})
        return records

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 40.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    @property
    def owner(self) -> str:
        return f"daemon pid {self.process.pid} on {socket.gethostname()}"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def daemons(project: Project) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(**kwargs: Any) -> Daemon:
        started.append(Daemon(project, **kwargs))
        return started[-1]

    yield start
    for d in started:
        if d.process.poll() is None:
            d.process.kill()
            d.process.wait()




@pytest.fixture
def pg_state_dsn() -> Iterator[str]:
    """A fresh schema on the test Postgres for a state store; skipped (failed under CI) without one."""
    import uuid

    require_postgres()
    import psycopg
    schema = f"traits_daemon_{uuid.uuid4().hex[:12]}"
    yield f"{PG_DSN}{'&' if '?' in PG_DSN else '?'}schema={schema}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'drop schema if exists "{schema}" cascade')


class Hook:
    """A local HTTP receiver that records JSON bodies, answering ``status`` after ``delay`` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        self.delay = delay
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if hook.delay:
                    time.sleep(hook.delay)  # a slow receiver, so a run is still delivering
                hook.bodies.append(body)
                self.send_response(hook.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/SECRET-PATH"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [str(b.get("text")) for b in self.bodies]


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.server.shutdown()
    h.server.server_close()
