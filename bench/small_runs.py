"""Memory and time of small runs: 150,000 rows × 5 traits from Postgres, first sync and unchanged re-run.

A daemon runs several traits at once, so what one small run holds matters. Each run is a
real ``traits run`` process; its peak RSS comes from ``os.wait4``. The destination is a file
(``--destination file``, the default) or a local Segment-compatible receiver this script
serves on 127.0.0.1 (``--destination segment``). Target (issue 10): ≤ 120 MB in either mode.

    python bench/small_runs.py [--rows 150000] [--destination file|segment] [--repeat 2]
                               [--dsn postgresql://postgres@127.0.0.1:5432/sql_traits_small]
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
import time
from pathlib import Path

SQL = "select id as user_id, plan, visits, revenue, active, last_seen from bench_users"
WORK = Path(__file__).parent / ".work" / "small"


def psql(dsn: str, command: str) -> None:
    subprocess.run(["psql", dsn, "-q", "-v", "ON_ERROR_STOP=1", "-c", command], check=True, stdout=subprocess.DEVNULL)


def ensure_table(dsn: str, rows: int) -> None:
    admin = dsn.rsplit("/", 1)[0] + "/postgres"
    name = dsn.rsplit("/", 1)[1].split("?")[0]
    exists = subprocess.run(["psql", admin, "-tAc", f"select 1 from pg_database where datname = '{name}'"], capture_output=True, text=True)
    if exists.stdout.strip() != "1":
        psql(admin, f"create database {name}")
    out = subprocess.run(["psql", dsn, "-tAc", "select count(*) from bench_users"], capture_output=True, text=True)
    if out.returncode == 0 and out.stdout.strip() == str(rows):
        return
    print(f"creating bench_users with {rows:,} rows…", file=sys.stderr)
    psql(dsn, "drop table if exists bench_users")
    psql(dsn, f"""create table bench_users as
        select 'user_' || g as id,
               (array['free','starter','pro','enterprise'])[1 + g % 4] as plan,
               (g * 7919) % 1000 as visits,
               round(((g * 104729) % 100000) / 100.0, 2)::numeric(10,2) as revenue,
               g % 3 = 0 as active,
               timestamptz '2026-01-01' - make_interval(secs => (g * 31) % 31536000) as last_seen
        from generate_series(1::bigint, {rows}::bigint) g""")
    psql(dsn, "alter table bench_users add primary key (id)")
    psql(dsn, "vacuum analyze bench_users")


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


def run_measured(cmd: list[str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stderr is not None
    out = process.stdout.read()
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{cmd} failed ({code}): {err.decode()[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024, out.decode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--destination", choices=["file", "segment"], default="file")
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
    floor = sorted(run_measured(["psql", args.dsn, "-c", f"\\copy ({SQL}) to '/dev/null'"])[0] for _ in range(3))[1]
    print(f"{args.rows:,} rows × 5 traits, Postgres → {args.destination}; floor (psql \\copy to /dev/null) {floor:.2f} s")
    results = []
    for attempt in range(args.repeat):
        shutil.rmtree(WORK, ignore_errors=True)
        WORK.mkdir(parents=True)
        (WORK / "traits.yml").write_text(f"""
sources:
  pg: {{type: postgres, dsn: "{args.dsn}"}}
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
            seconds, rss, out = run_measured([*traits, "run", "small", "--json"])
            sent = json.loads(out)["runs"][-1]["sent"]
            row[label] = {"seconds": round(seconds, 3), "peak_rss_mb": round(rss / 1e6, 1), "sent": sent}
            print(f"#{attempt + 1} {label:<17} {seconds:6.2f} s   peak RSS {rss / 1e6:6.1f} MB   sent {sent:,}", flush=True)
        results.append(row)
    if server is not None:
        server.shutdown()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
