"""The console with a long history and a large snapshot: trait page and profile lookup times.

1. 10,000 run records of one trait (``save_run``), then the trait page (``/traits/NAME``) and
   its JSON twin fetched over HTTP from the console's real server: median and p95 of 20.
   Target (issue 11): under 300 ms.
2. A 10M-row snapshot of that trait, built through the store's own commit path: a change file
   of 10M added rows in a shuffled order (DuckDB), the acknowledgement log the delivery would
   have written, then ``commit``. Then ``held`` for ids at the start, middle and end and one
   that is absent, and the profile page over HTTP. Target: under 1 s.

    python bench/console.py [--runs 10000] [--rows 10000000] [--state local|postgresql://…]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import httpx

WORK = Path(__file__).parent / ".work" / "console"
TRAIT = "big_trait"


def write_config(root: Path, state: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "traits.yml").write_text(
        "sources:\n  wh: {type: duckdb, path: wh.duckdb}\n"
        "destinations:\n  out: {type: file, path: out/calls.jsonl}\n"
        f"traits:\n  {TRAIT}:\n    kind: user\n    source: wh\n    sql: select 1 as user_id, 2 as n\n    destinations: [out]\n"
        f"settings:\n  state: '{state}'\n"
    )


def add_runs(store: object, runs: int) -> None:
    from traits.state.records import DestinationCounts, RunRecord

    for i in range(runs):
        minute = i
        at = f"2025-{1 + (minute // 43200) % 12:02d}-{1 + (minute // 1440) % 28:02d}T{(minute // 60) % 24:02d}:{minute % 60:02d}:00.000Z"
        changed = (i * 37) % 500
        record = RunRecord(
            run_id=f"bench-{i:06d}", trait=TRAIT, started_at=at, finished_at=at, status="ok" if i % 50 else "partial",
            phase="commit", rows=10_000_000, changed=changed, unchanged=10_000_000 - changed, sent=changed,
            failed=0 if i % 50 else 3, duration=7.5,
            destinations={"out": DestinationCounts(changed=changed, unchanged=10_000_000 - changed, sent=changed, status="ok")},
            phase_started={"query": at, "validate": at, "diff": at, "deliver": at, "commit": at},
        )
        store.save_run(record)  # type: ignore[attr-defined]


def build_snapshot(store: object, rows: int, work: Path) -> float:
    """10M added rows folded into the snapshot by the store's commit, as a first sync would."""
    from traits.columnar import connect, sql_path
    from traits.snapshot_format import Changes

    changes = work / "changes.parquet"
    con = connect(work, "4GB")  # the bench's own set-up, not the store's
    try:
        con.execute(
            f"""COPY (select 'user_' || lpad(cast(i as varchar), 8, '0') as id, 'added' as change, hash(i) as row_hash,
                       '{{"n":' || (i % 1000) || ',"plan":"' || ['free','pro','team'][1 + i % 3] || '"}}' as values_json,
                       cast(null as varchar) as user_id, cast(null as varchar) as old_values_json
                from range({rows}) t(i) order by hash(i * 31))
            TO '{sql_path(changes)}' (FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE 20000)"""
        )
    finally:
        con.close()
    started = time.perf_counter()
    run_id = "bench-snapshot"
    if type(store).__name__ == "LocalStateStore":
        # the acknowledgement log exactly as LocalAckLog writes it, one line per batch of ids
        acks = store.run_dir(run_id) / "acks" / "out.jsonl"  # type: ignore[attr-defined]
        acks.parent.mkdir(parents=True, exist_ok=True)
        con = connect(work, "4GB")  # the bench's own set-up, not the store's
        try:
            con.execute(
                f"""COPY (select list(id) as k from read_parquet('{sql_path(changes)}') group by hash(id) % 4000)
                TO '{sql_path(acks)}' (FORMAT json)"""
            )
        finally:
            con.close()
    else:
        with store._db("bench acks") as conn:  # type: ignore[attr-defined]
            conn.execute(
                f"insert into {store.s}.acks (run_id, trait, destination, id) "  # type: ignore[attr-defined]
                f"select %s, %s, 'out', 'user_' || lpad(g::text, 8, '0') from generate_series(0, {rows - 1}) g",
                (run_id, TRAIT),
            )
    store.commit(run_id, TRAIT, "out", Changes(changes))  # type: ignore[attr-defined]
    return time.perf_counter() - started


def timed(fn: object, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


def report(label: str, times: list[float]) -> None:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    print(f"{label:<52} median {statistics.median(times) * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms   (n={len(times)})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--state", default=".traits", help="local (default) or a postgresql:// DSN with ?schema=")
    args = parser.parse_args()

    from traits.cli.cmd_console import ReloadingConfig
    from traits.config import load_config
    from traits.console.serve import AppServer, console_app
    from traits.state import open_state

    shutil.rmtree(WORK, ignore_errors=True)
    write_config(WORK / "config", args.state)
    config = load_config(WORK / "config")
    store = open_state(config)
    if args.state.startswith("postgres"):
        store.reset(TRAIT)
    started = time.perf_counter()
    add_runs(store, args.runs)
    print(f"wrote {args.runs:,} run records in {time.perf_counter() - started:.1f} s ({args.state})")
    seconds = build_snapshot(store, args.rows, WORK)
    print(f"committed a {args.rows:,}-row snapshot in {seconds:.1f} s: {len(store.snapshot_files(TRAIT, 'out'))} file(s)")

    server = AppServer(console_app(ReloadingConfig(WORK / "config"), "127.0.0.1"), "127.0.0.1", 0)
    server.start()
    try:
        with httpx.Client(base_url=f"http://{server.address}", timeout=60) as http:
            page = http.get(f"/traits/{TRAIT}")
            assert page.status_code == 200, page.status_code
            assert "bench-" in page.text
            data = http.get(f"/api/traits/{TRAIT}").json()
            assert data["paging"]["total"] == args.runs
            assert len(data["chart"]["points"]) == 200
            report(f"trait page, {args.runs:,} runs (HTML)", timed(lambda: http.get(f"/traits/{TRAIT}").raise_for_status(), 20))
            report(f"trait page, {args.runs:,} runs (JSON)", timed(lambda: http.get(f"/api/traits/{TRAIT}").raise_for_status(), 20))
            report(f"trait page, {args.runs:,} runs, page 150 (HTML)", timed(lambda: http.get(f"/traits/{TRAIT}?page=150").raise_for_status(), 10))
            report("traits list (HTML)", timed(lambda: http.get("/").raise_for_status(), 10))
            for label, identity in (("first", "user_00000000"), ("middle", f"user_{args.rows // 2:08d}"), ("last", f"user_{args.rows - 1:08d}")):
                held = store.held(TRAIT, "out", identity)
                assert held is not None, identity
                assert held.run_id == "bench-snapshot", identity
                report(f"held(), {args.rows:,}-row snapshot, {label} id", timed(lambda i=identity: store.held(TRAIT, "out", i), 5))
            report(f"held(), {args.rows:,}-row snapshot, absent id", timed(lambda: store.held(TRAIT, "out", "nobody"), 5))
            middle = f"user_{args.rows // 2:08d}"
            profile = http.get(f"/api/profiles/{middle}").json()
            half = args.rows // 2
            assert profile["entries"][0]["values"] == {"n": half % 1000, "plan": ["free", "pro", "team"][half % 3]}
            report(f"profile page, {args.rows:,}-row snapshot (HTML)", timed(lambda: http.get(f"/profiles/{middle}").raise_for_status(), 5))
            report(f"profile JSON, {args.rows:,}-row snapshot", timed(lambda: http.get(f"/api/profiles/{middle}").raise_for_status(), 5))
    finally:
        server.stop()
        store.close()


if __name__ == "__main__":
    main()
