"""The core engine on a 10M-row Postgres table: first run, unchanged re-run, 1%-changed re-run.

Each is compared, in the same run, with the floor: ``psql \\copy (<the trait SQL>) to /dev/null``.
Targets (issue 3): unchanged re-run ≤ 2× the floor, 1%-changed re-run ≤ 2.5×, peak RSS ≤ 1 GiB.
Every run is a real ``traits run`` process; its peak RSS comes from ``wait4``. The floor is the
median of three copies taken right after each run.

    python bench/core_10m.py [--rows 10000000] [--dsn postgresql://postgres@127.0.0.1/postgres] [--first-only]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SQL = "select id as user_id, plan, visits, revenue, active, last_seen from bench_users"
WORK = Path(__file__).parent / ".work" / "core"


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
    psql(dsn, f"""create unlogged table bench_users as
        select 'user_' || g as id,
               (array['free','starter','pro','enterprise'])[1 + g % 4] as plan,
               (g * 7919) % 1000 as visits,
               round(((g * 104729) % 100000) / 100.0, 2)::numeric(10,2) as revenue,
               g % 3 = 0 as active,
               timestamptz '2026-01-01' - make_interval(secs => (g * 31) % 31536000) as last_seen
        from generate_series(1::bigint, {rows}::bigint) g""")
    psql(dsn, "alter table bench_users add primary key (id)")
    psql(dsn, "vacuum analyze bench_users")


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Seconds, peak RSS (bytes) and stdout of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None
    assert process.stderr is not None
    out = process.stdout.read()
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{cmd} failed ({process.returncode}): {err.decode()[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024, out.decode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dsn", default=os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/sql_traits_bench"))
    parser.add_argument("--first-only", action="store_true", help="measure the first run only")
    args = parser.parse_args()
    ensure_table(args.dsn, args.rows)

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    (WORK / "traits.yml").write_text(f"""
sources:
  pg: {{type: postgres, dsn: "{args.dsn}", statement_timeout: 30m}}
destinations:
  out: {{type: file, path: out/calls.jsonl, batch_size: 20000}}
traits:
  bench:
    kind: user
    source: pg
    sql: "{SQL}"
    destinations: [out]
settings:
  max_rows: {max(args.rows, 10_000_000)}
""")
    traits = [sys.executable, "-m", "traits.cli.main", "--config", str(WORK)]

    def floor() -> float:
        """The median of three psql copies: this machine's timings wander by a third from run to run."""
        times = sorted(timed(["psql", args.dsn, "-c", f"\\copy ({SQL}) to '/dev/null'"])[0] for _ in range(3))
        return times[1]

    def run(label: str) -> dict[str, float]:
        seconds, rss, out = timed([*traits, "run", "bench", "--json"])
        record = json.loads(out)["runs"][-1]
        f = floor()
        row = {"seconds": seconds, "floor": f, "ratio": seconds / f, "rss_mib": rss / 2**20, "sent": record["sent"]}
        print(f"{label:<22} {seconds:7.2f} s   floor {f:5.2f} s   {seconds / f:5.2f}× floor   "
              f"peak RSS {rss / 2**20:6.0f} MiB   sent {record['sent']:,}", flush=True)
        return row

    print(f"{args.rows:,} rows × 5 traits, Postgres → file; floor = psql \\copy of the same SQL to /dev/null")
    results = {"first": run("first run")}
    if args.first_only:
        print(json.dumps(results))
        return
    (WORK / "out" / "calls.jsonl").unlink()  # a 3 GB file is not needed past here
    results["unchanged"] = run("unchanged re-run")
    changed = args.rows // 100
    psql(args.dsn, f"update bench_users set visits = visits + 1 where id in (select id from bench_users order by md5(id) limit {changed})")
    results["changed_1pct"] = run("1%-changed re-run")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
