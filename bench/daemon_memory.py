"""What several traits running at once cost a daemon: peak RSS of one ``traits daemon`` process.

A daemon runs its traits in threads of one process, so the libraries a run needs (DuckDB,
Arrow, the drivers: about 90 MB of their files' pages) are loaded once, and each trait running
at the same time adds only its own working memory. For each count of traits (``--traits 1,4``)
this starts a real daemon on a fresh config of that many traits, each 150,000 rows × 5 traits
from Postgres to its own file (small_runs.py's table and query), every trait due at once and
``settings.concurrency`` as large as the count; it waits (with a deadline) until every trait has
a finished first sync in history, reads the daemon's peak RSS (``VmHWM``), and stops it.

    python bench/daemon_memory.py [--traits 1,4] [--rows 150000] [--dsn postgresql://postgres@127.0.0.1:5432/sql_traits_small]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from core_10m import SQL, ensure_table

WORK = Path(__file__).parent / ".work" / "daemon"
#: how long the first syncs of every trait may take before the bench gives up
DEADLINE_S = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(directory: Path, dsn: str, traits: int) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    dests = "".join(f"  out{i}: {{type: file, path: out/calls{i}.jsonl}}\n" for i in range(traits))
    body = "".join(
        f"  small{i}:\n    kind: user\n    source: pg\n    sql: \"{SQL}\"\n    destinations: [out{i}]\n    schedule: every 12h\n"
        for i in range(traits)
    )
    (directory / "traits.yml").write_text(
        f'sources:\n  pg: {{type: postgres, dsn: "{dsn}"}}\ndestinations:\n{dests}traits:\n{body}'
        f"settings:\n  concurrency: {traits}\n"
    )


def finished(directory: Path, traits: int) -> int:
    """How many traits have a finished run (the local state store's history)."""
    db = directory / ".traits" / "state.db"
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute("select count(distinct trait) from runs where status <> 'running'").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return 0
    return int(rows[0]) if rows else 0


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def measure(dsn: str, traits: int) -> dict[str, float]:
    directory = WORK / f"{traits}-traits"
    write_config(directory, dsn, traits)
    started = time.monotonic()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "traits.cli.main", "--config", str(directory), "daemon", "--port", str(free_port())],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        while finished(directory, traits) < traits:
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited ({daemon.returncode}): {daemon.stderr.read()[-2000:] if daemon.stderr else ''}")
            if time.monotonic() - started > DEADLINE_S:
                raise SystemExit(f"{traits} traits: not every first sync finished within {DEADLINE_S} s")
            time.sleep(0.2)
        seconds = time.monotonic() - started
        peak = peak_rss_kib(daemon.pid)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    sent = sum(len((directory / "out" / f"calls{i}.jsonl").read_bytes().splitlines()) for i in range(traits))
    shutil.rmtree(directory, ignore_errors=True)
    return {"traits": traits, "seconds": round(seconds, 2), "peak_rss_mb": round(peak * 1024 / 1e6, 1), "calls": sent}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traits", default="1,4", help="comma-separated counts of traits running at once")
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--dsn", default=os.environ.get("BENCH_PG_SMALL", "postgresql://postgres@127.0.0.1:5432/sql_traits_small"))
    args = parser.parse_args()
    ensure_table(args.dsn, args.rows)
    results = [measure(args.dsn, int(n)) for n in args.traits.split(",")]
    base = results[0]
    for r in results:
        extra = (r["peak_rss_mb"] - base["peak_rss_mb"]) / (r["traits"] - base["traits"]) if r["traits"] > base["traits"] else None
        more = f"   {extra:.1f} MB for each trait beyond {base['traits']:.0f}" if extra is not None else ""
        print(f"{r['traits']:>3.0f} traits at once  {r['seconds']:7.2f} s  peak RSS {r['peak_rss_mb']:6.1f} MB  calls {r['calls']:,.0f}{more}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
