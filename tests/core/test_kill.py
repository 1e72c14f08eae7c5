"""A run killed with SIGKILL at any point loses nothing: the next run ends with the right values."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Project

ROWS = 60_000
TRAIT = """  t:
    kind: user
    source: wh
    sql: select id as user_id, n, label from people
    destinations: [out]
    max_exit_ratio: 1
"""


def expected(project: Project) -> dict[str, dict[str, object]]:
    if project.source_kind == "duckdb":
        import duckdb

        con = duckdb.connect(str(project.root / "wh.duckdb"), read_only=True)
        try:
            rows = con.execute("select id, n, label from people").fetchall()
        finally:
            con.close()
    else:
        import psycopg

        from tests.conftest import PG_DSN

        with psycopg.connect(PG_DSN) as conn:
            rows = conn.execute(f"select id, n, label from {project.pg_schema}.people").fetchall()  # type: ignore[arg-type]
    return {r[0]: {"label": r[2], "n": r[1]} for r in rows}


def run_tables(project: Project) -> list[str]:
    """The per-run tables left in the bookkeeping schema (warehouse mode)."""
    if project.source_kind == "duckdb":
        import duckdb

        con = duckdb.connect(str(project.root / "wh.duckdb.sql_traits" / "t.duckdb"), read_only=True)
        try:
            tables = [str(r[0]) for r in con.execute("select table_name from duckdb_tables()").fetchall()]
        finally:
            con.close()
    else:
        import psycopg

        from tests.conftest import PG_DSN

        with psycopg.connect(PG_DSN) as conn:
            rows = conn.execute("select table_name from information_schema.tables where table_schema = %s", (project.bookkeeping_schema,))
            tables = [str(r[0]) for r in rows.fetchall()]
    return [t for t in tables if t.startswith("run_")]


def start_run(project: Project) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "traits.cli.main", "--config", str(project.root), "run", "t"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )


def wait_for(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


@pytest.mark.slow
def test_sigkill_at_random_points_then_a_final_run_holds_every_value(duck_project: Project) -> None:
    sigkill_rounds(duck_project)


@pytest.mark.slow
@pytest.mark.parametrize("project", ["postgres-adbc+warehouse"], indirect=True)
def test_sigkill_at_random_points_on_postgres_in_warehouse_mode(project: Project) -> None:
    """The same rounds with the diff in the real Postgres: its per-run tables, folds and resumes."""
    sigkill_rounds(project)


def sigkill_rounds(project: Project) -> None:
    duck = project.source_kind == "duckdb"
    rows = f"range({ROWS}) t(g)" if duck else f"generate_series(0, {ROWS - 1}) t(g)"
    project.sql(f"create table people as select 'u' || g as id, g % 13 as n, 'v0' as label from {rows}")
    project.write(TRAIT.replace("    destinations: [out]\n", "    destinations: [out]\n"),
                  destinations="  out: {type: file, path: out/calls.jsonl, batch_size: 200}\n")
    rng = random.Random(7)
    killed_during_delivery = 0
    for round_ in range(8):
        # a day of change: some rows change, some leave, some arrive
        some = (lambda salt, m: f"hash(id, '{salt}') % {m} = 0") if duck else (lambda salt, m: f"abs(hashtext(id || '{salt}')) % {m} = 0")
        project.sql(f"update people set label = 'v{round_ + 1}' where {some(round_, 4)}")
        project.sql(f"delete from people where {some(str(round_) + 'x', 50)}")
        new = "range(500) t(g)" if duck else "generate_series(0, 499) t(g)"
        project.sql(f"insert into people select 'n{round_}_' || g, g, 'new' from {new}")
        lines_before = project.calls_path.read_bytes().count(b"\n") if project.calls_path.exists() else 0
        process = start_run(project)
        if round_ % 2 == 0:
            # kill mid-delivery: once some of this run's calls are out
            target = lines_before + rng.randint(1, 20_000)
            wait_for(lambda: project.calls_path.exists() and project.calls_path.read_bytes().count(b"\n") >= target, 30)  # noqa: B023
        else:
            time.sleep(rng.uniform(0.0, 1.0))  # anywhere: startup, query, stage, diff, delivery or commit
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            if project.calls_path.exists() and project.calls_path.read_bytes().count(b"\n") > lines_before:
                killed_during_delivery += 1
        process.wait(timeout=30)
    final = start_run(project)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    assert killed_during_delivery >= 2
    assert project.final() == expected(project)
    # and a run after that has nothing left to send
    code, out = project.run_json("t")
    assert code == 0
    assert out["runs"][0]["sent"] == 0
    if project.diff == "warehouse":
        # the killed runs' tables are gone: each run drops its own, and the next drops a killed one's
        assert run_tables(project) == []
        assert out["runs"][0]["rows_fetched"] == 0
