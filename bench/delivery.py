"""Delivery throughput: sql-traits vs the official segment-analytics-python client.

    python bench/delivery.py [--rows 1000000] [--segment-calls 200000]   (pip install -e ".[bench]")

Both send identify calls (5 traits each) to the same fast local Segment-compatible sink, a
separate process that reads each request and answers 200. sql-traits runs a whole trait end
to end (DuckDB source → stage → validate → diff → deliver → commit, a first sync so every
row is a call); the official client gets the same calls (same userIds, traits, messageIds)
through ``identify`` + ``flush``. Prints calls/s and peak RSS; never asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

TRAIT = "bench_traits"
DESTINATION = "sink"
PLANS = ("free", "pro", "team", "enterprise")


# -- the sink: a raw asyncio HTTP/1.1 server, so the sink is never the bottleneck ---------------
class _Sink(asyncio.Protocol):
    stats: ClassVar[dict[str, int]] = {"requests": 0, "calls": 0, "bytes": 0}  # one sink per process

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = bytearray()
        self.need: int | None = None
        self.path = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.need is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buffer[:end]).split(b"\r\n")
                del self.buffer[: end + 4]
                self.path = head[0].split(b" ")[1]
                self.need = 0
                for line in head[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        self.need = int(value)
            if len(self.buffer) < self.need:
                return
            body = bytes(self.buffer[: self.need])
            del self.buffer[: self.need]
            self.need = None
            self._answer(body)

    def _answer(self, body: bytes) -> None:
        stats = self.stats
        if self.path == b"/stats":
            out = json.dumps(stats).encode()
        elif self.path == b"/reset":
            stats.update(requests=0, calls=0, bytes=0)
            out = b"{}"
        else:
            stats["requests"] += 1
            stats["calls"] += body.count(b'"messageId"')
            stats["bytes"] += len(body)
            out = b'{"success":true}'
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + str(len(out)).encode() + b"\r\n\r\n" + out
        )


def _serve(conn: Any) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Sink, "127.0.0.1", 0, backlog=128)
        conn.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def sink_get(url: str, path: str) -> dict[str, int]:
    with urllib.request.urlopen(urllib.request.Request(url + path, data=b"", method="POST"), timeout=10) as r:
        data: dict[str, int] = json.loads(r.read())
        return data


# -- the project -----------------------------------------------------------------------------
def make_project(root: Path, rows: int, sink: str) -> Path:
    import duckdb

    config = root / "config"
    config.mkdir(parents=True)
    con = duckdb.connect(str(config / "wh.duckdb"))
    con.execute(
        f"""create table users as select 'user-' || i as user_id,
            ['free','pro','team','enterprise'][1 + i % 4] as plan, i % 1000 as score, i % 3 = 0 as active,
            round(i * 0.37, 2) as ltv, date '2020-01-01' + cast(i % 2000 as integer) as signup
        from range({rows}) t(i)"""
    )
    con.close()
    document = {
        "sources": {"wh": {"type": "duckdb", "path": "wh.duckdb"}},
        "destinations": {DESTINATION: {"type": "segment", "write_key": "bench", "endpoint": sink}},
        "traits": {
            TRAIT: {
                "kind": "user", "source": "wh", "schedule": "manual", "destinations": [DESTINATION],
                "sql": "select user_id, plan, score, active, ltv, signup from users",
            }
        },
    }
    (config / "traits.yml").write_text(json.dumps(document))
    return config


def rss_mb(field: str = "VmRSS") -> float:
    """Resident memory now (VmRSS) or at its peak (VmHWM); unlike ru_maxrss, not inherited across exec."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


class Progress:
    """Times the deliver phase and samples RSS while it runs (advance comes from worker threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deliver_started = 0.0
        self.last_ack = 0.0
        self.cpu_started = 0.0
        self.cpu_at_last_ack = 0.0
        self.total = 0
        self.done = 0
        self.peak_rss = 0.0
        self.rss_at_start = 0.0
        self._stop = threading.Event()

    def phase(self, name: str, total: int | None = None) -> None:
        if name == "deliver":
            self.deliver_started = time.monotonic()
            self.cpu_started = time.process_time()
            self.total = total or 0
            self.done = 0  # the query phase reports rows through the same method
            self.rss_at_start = rss_mb()
            threading.Thread(target=self._sample, daemon=True).start()

    def advance(self, amount: int) -> None:
        with self.lock:
            self.done += amount
            self.last_ack = time.monotonic()
            self.cpu_at_last_ack = time.process_time()
            if self.total and self.done >= self.total:
                self._stop.set()  # delivery is over; the commit that follows is not sampled

    def _sample(self) -> None:
        while True:
            self.peak_rss = max(self.peak_rss, rss_mb())
            if self._stop.wait(0.02):
                return

    def close(self) -> None:
        self._stop.set()


def bench_traits(config: Path) -> dict[str, Any]:
    from traits.config import load_config
    from traits.pipeline.run import RunOptions, run_trait
    from traits.state import open_state

    cfg = load_config(config)
    state = open_state(cfg)
    progress = Progress()
    started = time.monotonic()
    result = run_trait(cfg, state, TRAIT, RunOptions(), progress)
    total = time.monotonic() - started
    progress.close()
    state.close()
    delivery = progress.last_ack - progress.deliver_started
    return {
        "status": result.record.status, "sent": result.record.sent, "run_id": result.record.run_id,
        "started_at": result.record.started_at, "total_s": total, "deliver_s": delivery,
        "deliver_cpu_s": progress.cpu_at_last_ack - progress.cpu_started,
        "rss_before_deliver_mb": progress.rss_at_start, "peak_rss_deliver_mb": progress.peak_rss,
        "peak_rss_process_mb": rss_mb("VmHWM"),
    }


# -- the official client, in its own process so its RSS is its own ---------------------------
def _segment_client(sink: str, calls: int, run_id: str, started_at: str, conn: Any) -> None:
    import logging

    from segment.analytics import Client

    from traits.pipeline.payloads import message_id

    logging.getLogger("segment").setLevel(logging.ERROR)
    timestamp = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    client = Client("bench", host=sink, max_queue_size=100_000)
    base = datetime(2020, 1, 1, tzinfo=UTC).date().toordinal()
    started = time.monotonic()
    cpu = time.process_time()
    for i in range(calls):
        key = f"user-{i}"
        traits = {
            "plan": PLANS[i % 4], "score": i % 1000, "active": i % 3 == 0, "ltv": round(i * 0.37, 2),
            "signup": datetime.fromordinal(base + i % 2000).date().isoformat(),
        }
        mid = message_id(DESTINATION, TRAIT, "identify", key, run_id)
        while not client.identify(key, traits, message_id=mid, timestamp=timestamp, context={"traits_engine": {"trait": TRAIT}})[0]:
            time.sleep(0.001)  # its queue is full: wait rather than drop the call
    client.flush()
    client.join()
    elapsed = time.monotonic() - started
    conn.send({"seconds": elapsed, "cpu_s": time.process_time() - cpu, "peak_rss_mb": rss_mb("VmHWM")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--segment-calls", type=int, default=200_000, help="calls sent with the official client (its rate is per call)")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    sink_process = ctx.Process(target=_serve, args=(child,), daemon=True)
    sink_process.start()
    sink = f"http://127.0.0.1:{parent.recv()}"
    print(f"sink {sink} (pid {sink_process.pid}); {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp:
        t = time.monotonic()
        config = make_project(Path(tmp), args.rows, sink)
        print(f"made {args.rows:,} rows × 5 traits in {time.monotonic() - t:.1f} s", flush=True)
        ours = bench_traits(config)
        got = sink_get(sink, "/stats")
    assert ours["sent"] == args.rows == got["calls"], (ours, got)
    ours_rate = ours["sent"] / ours["deliver_s"]
    print(
        f"sql-traits: {ours['sent']:,} calls in {got['requests']:,} requests ({got['bytes'] / 1e6:,.0f} MB); "
        f"deliver phase {ours['deliver_s']:.2f} s = {ours_rate:,.0f} calls/s "
        f"({ours['sent'] / ours['deliver_cpu_s']:,.0f} calls per CPU-second); "
        f"whole run (query, stage, validate, diff, deliver, commit) {ours['total_s']:.2f} s = {ours['sent'] / ours['total_s']:,.0f} calls/s",
        flush=True,
    )
    print(
        f"sql-traits RSS: {ours['rss_before_deliver_mb']:.0f} MB before delivery, peak {ours['peak_rss_deliver_mb']:.0f} MB during it, "
        f"process peak {ours['peak_rss_process_mb']:.0f} MB (DuckDB staging/diff included)",
        flush=True,
    )
    sink_get(sink, "/reset")
    parent, child = ctx.Pipe()
    client = ctx.Process(target=_segment_client, args=(sink, args.segment_calls, ours["run_id"], ours["started_at"], child))
    client.start()
    theirs = parent.recv()
    client.join()
    got = sink_get(sink, "/stats")
    theirs_rate = got["calls"] / theirs["seconds"]
    print(
        f"segment-analytics-python: {got['calls']:,} of {args.segment_calls:,} calls in {got['requests']:,} requests, "
        f"{theirs['seconds']:.2f} s = {theirs_rate:,.0f} calls/s ({got['calls'] / theirs['cpu_s']:,.0f} calls per CPU-second); "
        f"peak RSS {theirs['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    print(f"ratio: sql-traits delivers {ours_rate / theirs_rate:.1f}× the official client's calls/s (deliver phase)")
    print(f"       {ours['sent'] / ours['deliver_cpu_s'] / (got['calls'] / theirs['cpu_s']):.1f}× per CPU-second")
    print(f"       {ours['sent'] / ours['total_s'] / theirs_rate:.1f}× counting the whole sql-traits run")
    sink_process.terminate()


if __name__ == "__main__":
    main()
