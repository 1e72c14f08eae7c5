"""Local and warehouse diff mode side by side, at 1M, 10M and 100M rows × 5 traits, Postgres → file.

Per size and mode: first sync, unchanged re-run, re-run after 0.1% of the rows changed, and a
re-run after a further 1% changed (the 1%-changed target is core_10m.py's). Each run is a real
``traits run NAME --json`` process; its seconds and peak RSS come from core_10m's ``timed``
(``os.wait4``), and its rows and bytes fetched from the run's JSON (``rows_fetched``,
``bytes_fetched``). Every run is compared with the floor measured right after it, in the same
run of this script: the median of three ``psql \\copy (<trait SQL>) to /dev/null``.

The table is core_10m's (``ensure_table``: id + text, int, numeric, bool, timestamptz traits,
built with ``generate_series``), one per size, renamed ``bench_users_<size>``, in the database
of ``--dsn`` (default ``traits_bench``). The changes are deterministic: ``visits + 1`` where the
id's number is 7 mod 1000 (0.1%), then where it is 13 mod 100 (1%, disjoint from the first).
Tables this script made are dropped at the end unless ``--keep``; a table kept by an earlier
``--keep`` is reused as it is (a table is complete only once it carries its row-count comment).

Warehouse mode (``diff: warehouse`` on the source, bookkeeping schema ``sql_traits``) is checked
with ``traits validate`` first; a build that refuses the keys gets "warehouse mode: not available
in this build" for those rows. Local mode above the default ``max_rows`` (10M) is skipped unless
``--local-big`` (it then sets ``max_rows`` on the trait).

Peak RSS is the ``traits`` process's alone: in warehouse mode the work Postgres does is not in
it (by design: that is the point of the mode). The file destination's file is deleted after each
run; a first sync at 100M writes ~40 GB of calls to it, so when those would take more than a
quarter of the free disk (or with ``--drain``) the script empties the file under the
destination's own lock as the run writes it. A 100M
table takes ~10 GB and ~4 min to make here: ``--prepare-only`` makes the tables and keeps them.
The JSON line at the end carries each run's seconds per phase (from its history record).

    python bench/modes.py [--sizes 1m,10m,100m] [--modes local,warehouse] [--keep] [--prepare-only]
                          [--local-big] [--scenarios first,unchanged,changed,changed_1pct] [--floor-repeat 3] [--out PATH] [--drain] [--memory-limit 2GB]
                          [--dsn postgresql://postgres@127.0.0.1:5432/traits_bench]
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

# the table, trait SQL and measurement of the 10M bench
from core_10m import SQL, ensure_table, psql, timed

WORK = Path(__file__).parent / ".work" / "modes"
BOOKKEEPING = "sql_traits"
DEFAULT_MAX_ROWS = 10_000_000
MiB = 2**20
GiB = 2**30
MB = 10**6
#: disk a table takes per row, table and primary key (core_10m's 10M table: ~1 GB + ~0.4 GB index)
TABLE_BYTES_PER_ROW = 150
#: disk the file destination takes per call of these rows (measured: 394 B at 9-digit ids)
CALL_BYTES_PER_ROW = 400
UNAVAILABLE = "warehouse mode: not available in this build"


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    #: the rows changed before it: those whose id's number is ``remainder`` mod ``modulus``
    modulus: int = 0
    remainder: int = 0

    @property
    def update(self) -> str | None:
        return f"substr(id, 6)::bigint % {self.modulus} = {self.remainder}" if self.modulus else None

    def changes(self, rows: int) -> int:
        """How many of ids 1..rows the update changes."""
        if not self.modulus or rows < self.remainder:
            return 0
        return (rows - self.remainder) // self.modulus + 1


SCENARIOS = [
    Scenario("first", "first sync"),
    Scenario("unchanged", "unchanged re-run"),
    Scenario("changed", "0.1% changed re-run", 1000, 7),
    Scenario("changed_1pct", "1% changed re-run", 100, 13),  # disjoint from the 0.1%
]


@dataclass
class Measure:
    seconds: float
    floor: float
    rss: int
    record: dict[str, Any]

    @property
    def ratio(self) -> float:
        return self.seconds / self.floor

    @property
    def rows_fetched(self) -> int | None:
        value = self.record.get("rows_fetched")
        return None if value is None else int(value)

    @property
    def bytes_fetched(self) -> int | None:
        value = self.record.get("bytes_fetched")
        return None if value is None else int(value)

    @property
    def calls_due(self) -> int:
        return int(self.record["added"]) + int(self.record["changed"]) + int(self.record["exited"])


#: (size, mode, scenario) → a Measure, or a sentence saying why there is none
Results = dict[tuple[str, str, str], Measure | str]


@dataclass
class Target:
    size: str
    mode: str
    scenario: str
    text: str
    check: Callable[[Measure], bool]


TARGETS = [
    Target("10m", "warehouse", "unchanged", "rows_fetched 0 and ≤ 1.0× floor",
           lambda m: m.rows_fetched == 0 and m.ratio <= 1.0),
    Target("100m", "warehouse", "changed", "rows_fetched == added+changed+exited, peak RSS ≤ 300 MB",
           lambda m: m.rows_fetched == m.calls_due and m.rss <= 300 * MB),
    Target("10m", "local", "first", "≤ 5× floor, peak RSS ≤ 1 GiB", lambda m: m.ratio <= 5 and m.rss <= GiB),
    Target("10m", "local", "unchanged", "≤ 2× floor", lambda m: m.ratio <= 2),
    Target("10m", "local", "changed_1pct", "≤ 2.5× floor (core_10m's)", lambda m: m.ratio <= 2.5),
]


def parse_size(text: str) -> tuple[str, int]:
    match = re.fullmatch(r"(\d+)([km]?)", text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"a size is a number with an optional k or m: {text!r}")
    rows = int(match.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2)]
    return match.group(1) + match.group(2), rows


def query(dsn: str, sql: str) -> str:
    out = subprocess.run(["psql", dsn, "-tAc", sql], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def free_disk(dsn: str) -> tuple[str, int]:
    """The Postgres data directory (or /) and the bytes free on its file system."""
    where = query(dsn, "show data_directory") or "/"
    try:
        return where, shutil.disk_usage(where).free
    except OSError:
        return "/", shutil.disk_usage("/").free


def prepare(dsn: str, label: str, rows: int) -> tuple[str, bool]:
    """``bench_users_<label>`` with ``rows`` rows: (table, made now)."""
    table = f"bench_users_{label}"
    if query(dsn, f"select obj_description('{table}'::regclass, 'pg_class')") == f"rows={rows}":
        size = query(dsn, f"select pg_size_pretty(pg_total_relation_size('{table}'))")
        print(f"{table}: kept from an earlier run ({rows:,} rows, {size})", file=sys.stderr, flush=True)
        return table, False
    where, free = free_disk(dsn)
    need = rows * TABLE_BYTES_PER_ROW
    df = subprocess.run(["df", "-h", where], capture_output=True, text=True).stdout.strip()
    print(f"disk before making {table} (needs ~{need / GiB:.1f} GiB):\n{df}", file=sys.stderr, flush=True)
    if free < need * 1.5 + 5 * GiB:
        raise SystemExit(f"not enough disk for {table}: {free / GiB:.1f} GiB free, want {(need * 1.5 + 5 * GiB) / GiB:.1f} GiB")
    start = time.perf_counter()
    name = dsn.rsplit("/", 1)[1].split("?")[0]
    admin = dsn.rsplit("/", 1)[0] + "/postgres"
    if query(admin, f"select 1 from pg_database where datname = '{name}'") != "1":
        psql(admin, f"create database {name}")
    # the primary key of 100M text ids sorts in memory rather than in ~64 MB runs on disk
    psql(admin, f"alter database {name} set maintenance_work_mem = '1GB'")
    # core_10m builds bench_users in the database of the DSN; this script's database is its own
    psql(dsn, "drop table if exists bench_users")
    psql(dsn, f"drop table if exists {table}")
    ensure_table(dsn, rows)
    psql(dsn, f"alter table bench_users rename to {table}; alter index bench_users_pkey rename to {table}_pkey; "
              f"comment on table {table} is 'rows={rows}'")
    size = query(dsn, f"select pg_size_pretty(pg_total_relation_size('{table}'))")
    print(f"{table}: made in {time.perf_counter() - start:.0f} s, {size}", file=sys.stderr, flush=True)
    return table, True


def floor(dsn: str, sql: str, repeat: int) -> float:
    """The median of ``repeat`` psql copies, as core_10m takes it (its floor is local to its main)."""
    times = sorted(timed(["psql", dsn, "-c", f"\\copy ({sql}) to '/dev/null'"])[0] for _ in range(repeat))
    return times[len(times) // 2]


def write_config(directory: Path, *, dsn: str, mode: str, trait: str, sql: str, rows: int, out: str, memory_limit: str | None = None) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    diff = f", diff: warehouse, bookkeeping_schema: {BOOKKEEPING}" if mode == "warehouse" else ""
    max_rows = f"\n    max_rows: {rows}" if rows > DEFAULT_MAX_ROWS else ""
    settings = f"\nsettings:\n  memory_limit: {memory_limit}" if memory_limit else ""
    (directory / "traits.yml").write_text(f"""
sources:
  pg: {{type: postgres, dsn: "{dsn}", statement_timeout: 3h{diff}}}
destinations:
  out: {{type: file, path: "{out}", batch_size: 20000}}
traits:
  {trait}:
    kind: user
    source: pg
    sql: "{sql}"
    destinations: [out]{max_rows}{settings}
""")


def warehouse_available(directory: Path) -> bool:
    """Whether this build takes ``diff: warehouse``; any other config error ends the script."""
    check = subprocess.run([sys.executable, "-m", "traits.cli.main", "--config", str(directory), "validate"],
                           capture_output=True, text=True)
    if check.returncode == 0:
        return True
    if check.returncode == 2 and re.search(r"\bdiff\b|bookkeeping_schema", check.stderr):
        return False
    raise SystemExit(f"traits validate failed ({check.returncode}): {check.stderr[-2000:]}")


def phase_seconds(record: dict[str, Any]) -> dict[str, float]:
    """Seconds from each phase's start to the next one's (the last one's to the run's end)."""
    # in the order the run entered them (validate and diff can start in the same millisecond)
    starts = [(datetime.fromisoformat(t.replace("Z", "+00:00")), name) for name, t in (record.get("phase_started") or {}).items()]
    finished = record.get("finished_at")
    ends = [t for t, _ in starts[1:]] + ([datetime.fromisoformat(finished.replace("Z", "+00:00"))] if finished else [])
    return {name: round((end - start).total_seconds(), 2) for (start, name), end in zip(starts, ends, strict=False)}


def failure(message: str) -> str:
    """The gist of a failed run from core_10m's ``timed`` message: its exit code and first error line."""
    code = re.search(r"failed \((-?\d+)\): ", message)
    rest = message[code.end():] if code else message
    line = next((x.strip() for x in rest.splitlines() if "error" in x.lower()), rest.strip().splitlines()[0] if rest.strip() else "")
    line = line.split(" Possible solutions:")[0]  # DuckDB's advice after its out-of-memory error
    return f"exit {code.group(1) if code else '?'}: {line[:240]}"


@contextmanager
def draining(path: Path, enabled: bool) -> Iterator[None]:
    """While a run writes ``path``, empty it every half second under the file destination's own lock.

    The destination appends each batch whole under ``flock`` and fsyncs it, so emptying the file
    between batches keeps all it does (and the disk it fills at most a few batches deep); the
    calls are not kept. ``/dev/null`` cannot stand in: fsync on it fails (EINVAL).
    """
    if not enabled:
        yield
        return
    stop = threading.Event()

    def drain() -> None:
        while not stop.wait(0.5):
            try:
                fd = os.open(path, os.O_WRONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.ftruncate(fd, 0)
            finally:
                os.close(fd)  # releases the lock

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fmt_count(value: int | None, fallback: str = "–") -> str:
    return fallback if value is None else f"{value:,}"


def fmt_bytes(value: int | None) -> str:
    if value is None:
        return "–"
    return f"{value / MiB:,.1f} MiB" if value >= MiB else f"{value:,} B"


def target_for(size: str, mode: str, scenario: str) -> Target | None:
    return next((t for t in TARGETS if (t.size, t.mode, t.scenario) == (size, mode, scenario)), None)


HEADER = (f"{'size':>5} {'mode':<9} {'run':<20} {'seconds':>8} {'floor s':>7} {'×floor':>7} "
          f"{'rows fetched':>13} {'bytes fetched':>14} {'peak RSS':>9} {'sent':>11}  target")


def row_text(size: str, mode: str, sc: Scenario, result: Measure | str, rows: int = 0) -> str:
    lead = f"{size:>5} {mode:<9} {sc.label:<20}"
    if isinstance(result, str):
        return f"{lead} {result}"
    m = result
    fetched = fmt_count(m.rows_fetched, fallback=f"{int(m.record['rows']):,}*" if mode == "local" else "–")
    line = (f"{lead} {m.seconds:8.2f} {m.floor:7.2f} {m.ratio:6.2f}× {fetched:>13} {fmt_bytes(m.bytes_fetched):>14} "
            f"{m.rss / MiB:5.0f} MiB {int(m.record['sent']):>11,}")
    if m.record.get("status") != "ok":
        line += f"  [status {m.record.get('status')}]"
    if sc.modulus and (m.record["changed"], m.record["added"], m.record["exited"]) != (sc.changes(rows), 0, 0):
        line += f"  [expected {sc.changes(rows):,} changed, no added or exited]"
    target = target_for(size, mode, sc.key)
    if target is not None:
        line += f"  {'PASS' if target.check(m) else 'MISS'}: {target.text}"
    return line


def grows(measures: list[Measure | None], value: Callable[[Measure], float], width: int) -> str:
    """How many times the previous size's ``value`` each size's is."""
    return " ".join(f"{f'×{value(b) / value(a):.2f}' if a and b else '–':>{width}}" for a, b in itertools.pairwise(measures))


def growth_table(results: Results, sizes: list[str], modes: list[str], scenarios: list[Scenario]) -> list[str]:
    """Seconds (× floor) and peak RSS per size, and how each grows from one size to the next."""
    steps = [f"{a}→{b}" for a, b in itertools.pairwise(sizes)]
    lines = [f"{'mode':<9} {'run':<20} " + " ".join(f"{s + ' s (×floor)':>18}" for s in sizes) + "  "
             + " ".join(f"{'time ' + s:>14}" for s in steps) + "  " + " ".join(f"{s + ' RSS':>10}" for s in sizes)
             + "  " + " ".join(f"{'RSS ' + s:>14}" for s in steps)]
    for mode in modes:
        for sc in scenarios:
            cells = [results.get((s, mode, sc.key)) for s in sizes]
            measures = [c if isinstance(c, Measure) else None for c in cells]
            if not any(measures):
                reason = next((c for c in cells if isinstance(c, str)), "not measured")
                lines.append(f"{mode:<9} {sc.label:<20} {reason}")
                continue
            times = " ".join(f"{f'{m.seconds:.1f} ({m.ratio:.2f}×)' if m else '–':>18}" for m in measures)
            rss = " ".join(f"{f'{m.rss / MiB:.0f} MiB' if m else '–':>10}" for m in measures)
            lines.append(f"{mode:<9} {sc.label:<20} {times}  {grows(measures, lambda m: m.seconds, 14)}  {rss}  "
                         + grows(measures, lambda m: float(m.rss), 14))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1m,10m,100m", help="comma-separated row counts: 1m, 10m, 100m, 150k…")
    parser.add_argument("--modes", default="local,warehouse", help="comma-separated: local, warehouse")
    parser.add_argument("--dsn", default=os.environ.get("BENCH_PG_MODES", "postgresql://postgres@127.0.0.1:5432/traits_bench"))
    parser.add_argument("--keep", action="store_true", help="keep the tables (and the bookkeeping schema) made here")
    parser.add_argument("--prepare-only", action="store_true", help="make the tables and stop (implies --keep)")
    parser.add_argument("--local-big", action="store_true", help="also run local mode above 10M rows (sets max_rows on the trait)")
    parser.add_argument("--scenarios", default=",".join(sc.key for sc in SCENARIOS),
                        help="comma-separated, from: " + ", ".join(sc.key for sc in SCENARIOS) + " (first is needed by the rest)")
    parser.add_argument("--floor-repeat", type=int, default=3, help="psql copies per floor (the median is taken)")
    parser.add_argument("--out", default="out/calls.jsonl", help="the file destination's path (deleted after each run)")
    parser.add_argument("--drain", action="store_true",
                        help="empty the file under its lock as the run writes it (on by itself when the disk is short)")
    parser.add_argument("--memory-limit", help="settings.memory_limit for every run (the engine's default if not given)")
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if Path(args.out).is_absolute() and Path(args.out).parent == Path("/dev"):
        parser.error("--out under /dev: the file destination fsyncs each batch, and fsync on /dev/null fails (EINVAL); see --drain")
    if not set(modes) <= {"local", "warehouse"}:
        parser.error("--modes takes local and/or warehouse")
    wanted = {k.strip() for k in args.scenarios.split(",") if k.strip()}
    if not wanted <= {sc.key for sc in SCENARIOS} or "first" not in wanted:
        parser.error("--scenarios takes first and any of " + ", ".join(sc.key for sc in SCENARIOS[1:]))
    scenarios = [sc for sc in SCENARIOS if sc.key in wanted]
    keep = args.keep or args.prepare_only
    traits_cmd = [sys.executable, "-m", "traits.cli.main", "--config"]

    made: list[str] = []
    results: Results = {}
    timings: list[str] = []
    available = {"local": True, "warehouse": True}
    if "warehouse" in modes and not args.prepare_only:
        probe = WORK / "probe"
        write_config(probe, dsn=args.dsn, mode="warehouse", trait="probe", sql=SQL, rows=1, out=args.out)
        available["warehouse"] = warehouse_available(probe)
        shutil.rmtree(probe, ignore_errors=True)
        if not available["warehouse"]:
            print(UNAVAILABLE, flush=True)

    if not args.prepare_only:
        limit = args.memory_limit or "the default"
        print(f"Postgres → file ({args.out}), 5 traits per row, memory_limit {limit}; floor = median of {args.floor_repeat} × psql \\copy (<trait SQL>) "
              "to /dev/null, taken right after each run; peak RSS of the traits process (wait4); * = not reported by this build: "
              "local mode streams the whole result out, so its rows fetched are the result's rows", flush=True)
        if not args.local_big and "local" in modes and any(rows > DEFAULT_MAX_ROWS for _, rows in sizes):
            print(f"local mode above {DEFAULT_MAX_ROWS:,} rows (the default max_rows): skipped; --local-big runs it "
                  "with max_rows set on the trait", flush=True)
        print(HEADER, flush=True)
    try:
        for label, rows in sizes:
            size_start = time.perf_counter()
            table, new = prepare(args.dsn, label, rows)
            if new:
                made.append(table)
            table_seconds = time.perf_counter() - size_start
            if args.prepare_only:
                timings.append(f"{label}: table ready in {table_seconds:.0f} s")
                continue
            assert SQL.endswith(" from bench_users")
            sql = SQL.removesuffix("bench_users") + table
            trait = f"bench_{label}"
            runnable: list[str] = []
            for mode in modes:
                if not available[mode]:
                    reason = UNAVAILABLE
                elif mode == "local" and rows > DEFAULT_MAX_ROWS and not args.local_big:
                    reason = f"skipped: above the default max_rows {DEFAULT_MAX_ROWS:,} (--local-big to run)"
                else:
                    runnable.append(mode)
                    write_config(WORK / f"{label}-{mode}", dsn=args.dsn, mode=mode, trait=trait, sql=sql, rows=rows, out=args.out,
                                 memory_limit=args.memory_limit)
                    continue
                for sc in scenarios:
                    results[(label, mode, sc.key)] = reason
                    print(row_text(label, mode, sc, reason), flush=True)
            if "warehouse" in runnable:  # a first sync is first in the warehouse too
                psql(args.dsn, f"drop schema if exists {BOOKKEEPING} cascade; create schema {BOOKKEEPING}")
            out_dir = Path(args.out).parent if Path(args.out).is_absolute() else WORK
            drain = args.drain
            if runnable:  # a first sync writes every row's call; one run's file at a time
                free = shutil.disk_usage(out_dir if out_dir.exists() else WORK).free
                # warehouse mode also fills the bookkeeping schema: the result with its hashes and the snapshot
                bookkeeping = rows * TABLE_BYTES_PER_ROW * 1.5 if "warehouse" in runnable else 0
                if free < bookkeeping + 2 * GiB:
                    raise SystemExit(f"not enough disk for ~{bookkeeping / GiB:.0f} GiB of bookkeeping: {free / GiB:.1f} GiB free")
                # the disk is shared: a run's calls may take a quarter of what is free, not all of it
                if not drain and rows * CALL_BYTES_PER_ROW > (free - bookkeeping) / 4:
                    drain = True
                    print(f"{label}: {free / GiB:.1f} GiB free is short of {rows:,} calls (~{rows * CALL_BYTES_PER_ROW / GiB:.0f} GiB)"
                          + (f" and ~{bookkeeping / GiB:.0f} GiB of bookkeeping" if bookkeeping else "")
                          + ": the file is emptied under its lock as the runs write it (--drain)", flush=True)
            for sc in scenarios:
                key = sc.key
                if sc.update is not None and any(isinstance(results.get((label, m, "first")), Measure) for m in runnable):
                    psql(args.dsn, f"update {table} set visits = visits + 1 where {sc.update}")
                for mode in runnable:
                    directory = WORK / f"{label}-{mode}"
                    out = Path(args.out) if Path(args.out).is_absolute() else directory / args.out
                    first = results.get((label, mode, "first"))
                    if key != "first" and not isinstance(first, Measure):
                        result: Measure | str = "not run: the first sync failed"
                        results[(label, mode, key)] = result
                        print(row_text(label, mode, sc, result, rows), flush=True)
                        continue
                    start = time.perf_counter()
                    try:
                        with draining(out, drain):
                            seconds, rss, stdout = timed([*traits_cmd, str(directory), "run", trait, "--json"])
                        record = json.loads(stdout)["runs"][-1]
                        result = Measure(seconds, floor(args.dsn, sql, args.floor_repeat), rss, record)
                    except SystemExit as e:  # one failed run does not stop the others
                        result = f"failed after {time.perf_counter() - start:.0f} s: {failure(str(e))}"
                    finally:
                        if out.exists() and out.is_file():
                            out.unlink()  # 100M calls are ~40 GB; what is measured is writing them
                    results[(label, mode, key)] = result
                    print(row_text(label, mode, sc, result, rows), flush=True)
            for mode in runnable:
                shutil.rmtree(WORK / f"{label}-{mode}", ignore_errors=True)  # staging and snapshots
            if "warehouse" in runnable and not keep:
                psql(args.dsn, f"drop schema if exists {BOOKKEEPING} cascade")
            timings.append(f"{label}: {time.perf_counter() - size_start:.0f} s in all (table {table_seconds:.0f} s)")
    finally:
        if not keep:
            for table in made:
                psql(args.dsn, f"drop table if exists {table}")
        elif made:
            print(f"kept: {', '.join(made)}", file=sys.stderr)

    if args.prepare_only:
        print("\n".join(timings))
        return
    labels = [label for label, _ in sizes]
    print("\nAll runs:")
    print(HEADER)
    for label in labels:
        for mode in modes:
            for sc in scenarios:
                if (label, mode, sc.key) in results:
                    print(row_text(label, mode, sc, results[(label, mode, sc.key)], dict(sizes)[label]))
    print("\nGrowth with size (seconds, × floor, peak RSS; ×N = how many times the previous size's):")
    print("\n".join(growth_table(results, labels, modes, scenarios)))
    print("\nTargets:")
    for t in TARGETS:
        measured = results.get((t.size, t.mode, t.scenario))
        verdict = ("PASS" if t.check(measured) else "MISS") if isinstance(measured, Measure) else f"not measured ({measured or 'size or mode not run'})"
        extra = ""
        if isinstance(measured, Measure):
            extra = (f" — {measured.ratio:.2f}× floor, rows_fetched {fmt_count(measured.rows_fetched)}, "
                     f"added+changed+exited {measured.calls_due:,}, peak RSS {measured.rss / MB:.0f} MB")
        print(f"  {verdict:<4}  {t.mode} {t.size} {t.scenario}: {t.text}{extra}")
    print("\nTime per size: " + "; ".join(timings))
    print(json.dumps({f"{s}/{m}/{k}": (v if isinstance(v, str) else {
        "seconds": round(v.seconds, 3), "floor": round(v.floor, 3), "ratio": round(v.ratio, 3), "peak_rss_mib": round(v.rss / MiB, 1),
        "rows_fetched": v.rows_fetched, "bytes_fetched": v.bytes_fetched, "rows": v.record["rows"], "added": v.record["added"],
        "changed": v.record["changed"], "exited": v.record["exited"], "sent": v.record["sent"], "status": v.record.get("status"),
        "phases": phase_seconds(v.record),
    }) for (s, m, k), v in results.items()}))


if __name__ == "__main__":
    main()
