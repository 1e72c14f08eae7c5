"""Memory and time of small runs: 150,000 rows × 5 traits from Postgres, first sync and unchanged re-run.

A daemon runs several traits at once, so what one small run holds matters. Each run is a
real ``traits run`` process; its peak RSS comes from ``os.wait4``. The destination is a file
(``--destination file``, the default) or a local Segment-compatible receiver this script
serves on 127.0.0.1 (``--destination segment``). ``--mode warehouse`` sets ``diff: warehouse``
on the Postgres source (the snapshots and the diff live in Postgres); ``local``, the default,
diffs here. Target (issue 10): ≤ 120 MB in either mode.

    python bench/small_runs.py [--rows 150000] [--destination file|segment] [--mode local|warehouse]
                               [--repeat 2] [--dsn postgresql://postgres@127.0.0.1:5432/sql_traits_small]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

# the same table, trait SQL and measurement as the 10M bench, at a small scale
from core_10m import SQL, ensure_table, timed

WORK = Path(__file__).parent / ".work" / "small"


class _Sink(http.server.BaseHTTPRequestHandler):
    """Accepts every batch: what is measured is the sender."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--destination", choices=["file", "segment"], default="file")
    parser.add_argument("--mode", choices=["local", "warehouse"], default="local", help="the source's diff mode")
    parser.add_argument("--repeat", type=int, default=2, help="measure the pair this many times")
    parser.add_argument("--dsn", default=os.environ.get("BENCH_PG_SMALL", "postgresql://postgres@127.0.0.1:5432/sql_traits_small"))
    args = parser.parse_args()
    ensure_table(args.dsn, args.rows)

    server = None
    if args.destination == "segment":
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        destination = f'{{type: segment, write_key: bench, endpoint: "http://127.0.0.1:{server.server_address[1]}"}}'
    else:
        destination = "{type: file, path: out/calls.jsonl}"

    traits = [sys.executable, "-m", "traits.cli.main", "--config", str(WORK)]
    floor = sorted(timed(["psql", args.dsn, "-c", f"\\copy ({SQL}) to '/dev/null'"])[0] for _ in range(3))[1]
    print(f"{args.rows:,} rows × 5 traits, Postgres ({args.mode} diff) → {args.destination}; floor (psql \\copy to /dev/null) {floor:.2f} s")
    results = []
    for attempt in range(args.repeat):
        shutil.rmtree(WORK, ignore_errors=True)
        WORK.mkdir(parents=True)
        if args.mode == "warehouse":  # a first sync: no snapshot left in the warehouse by the last attempt
            subprocess.run(["psql", args.dsn, "-q", "-c", "drop schema if exists sql_traits cascade"], check=True, stderr=subprocess.DEVNULL)
        (WORK / "traits.yml").write_text(f"""
sources:
  pg: {{type: postgres, dsn: "{args.dsn}", diff: {args.mode}}}
destinations:
  out: {destination}
traits:
  small:
    kind: user
    source: pg
    sql: "{SQL}"
    destinations: [out]
""")
        row = {}
        for label in ("first sync", "unchanged re-run"):
            seconds, rss, out = timed([*traits, "run", "small", "--json"])
            sent = json.loads(out)["runs"][-1]["sent"]
            row[label] = {"seconds": round(seconds, 3), "peak_rss_mb": round(rss / 1e6, 1), "sent": sent}
            print(f"#{attempt + 1} {label:<17} {seconds:6.2f} s   peak RSS {rss / 1e6:6.1f} MB   sent {sent:,}", flush=True)
        results.append(row)
    if server is not None:
        server.shutdown()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
