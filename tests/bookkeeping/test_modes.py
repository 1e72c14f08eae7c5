"""Switching diff modes, resetting and cleaning up: the warehouse's snapshot is trusted only
while the local store vouches for it, and what a run leaves in the bookkeeping schema goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Project, make_project

TRAIT = """  t:
    kind: user
    source: wh
    sql: select id as user_id, n, label from people
    destinations: [out]
"""


@pytest.fixture(params=["duckdb+warehouse", "postgres-adbc+warehouse"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    return make_project(request, tmp_path)


def run(project: Project, *args: str) -> dict[str, Any]:
    code, out = project.run_json("t", *args)
    assert code == 0, out
    record: dict[str, Any] = out["runs"][0]
    return record


def use(project: Project, diff: str) -> None:
    project.diff = diff
    project.write(TRAIT)


def bookkeeping_tables(project: Project) -> list[str]:
    if project.source_kind == "duckdb":
        import duckdb

        con = duckdb.connect(str(project.root / "wh.duckdb.sql_traits" / "t.duckdb"), read_only=True)
        try:
            return sorted(str(r[0]) for r in con.execute("select table_name from duckdb_tables()").fetchall())
        finally:
            con.close()
    import psycopg

    from tests.conftest import PG_DSN

    with psycopg.connect(PG_DSN) as conn:
        rows = conn.execute("select table_name from information_schema.tables where table_schema = %s", (project.bookkeeping_schema,)).fetchall()
    return sorted(str(r[0]) for r in rows)


def test_switching_modes_reseeds_without_resending(project: Project) -> None:
    project.sql("create table people as select 'u' || g as id, g as n, 'x' as label from generate_series(1, 50) t(g)"
                if project.source_kind != "duckdb" else
                "create table people as select 'u' || g as id, g as n, 'x' as label from range(1, 51) t(g)")
    use(project, "local")
    assert (run(project)["sent"], run(project)["sent"]) == (50, 0)

    # to warehouse mode: the first run fetches the result once, diffs it here, sends nothing
    use(project, "warehouse")
    first = run(project)
    assert (first["sent"], first["rows_fetched"], first["unchanged"]) == (0, 50, 50), first
    again = run(project)
    assert (again["sent"], again["rows_fetched"]) == (0, 0)

    # a change made while in local mode, then changed back: warehouse mode must not trust its
    # snapshot (it never saw the change), or the destination would keep the middle value
    project.sql("update people set label = 'y' where id = 'u7'")
    use(project, "local")
    assert run(project)["sent"] == 1
    project.sql("update people set label = 'x' where id = 'u7'")
    use(project, "warehouse")
    back = run(project)
    assert (back["sent"], back["changed"]) == (1, 1), back
    assert project.final()["u7"]["label"] == "x"

    # only changes leave the warehouse, and a run leaves no tables of its own behind
    project.sql("update people set n = n + 100 where id in ('u1', 'u2')")
    project.sql("delete from people where id = 'u3'")
    changed = run(project)
    assert (changed["sent"], changed["rows_fetched"], changed["changed"], changed["exited"]) == (3, 3, 2, 1), changed
    assert not [t for t in bookkeeping_tables(project) if t.startswith("run_")]
    assert project.final()["u1"]["n"] == 101
    assert "u3" not in project.final()


def test_reset_and_full_resync_send_everything_again(project: Project) -> None:
    project.sql("create table people as select 'u' || g as id, g as n, 'x' as label from generate_series(1, 20) t(g)"
                if project.source_kind != "duckdb" else
                "create table people as select 'u' || g as id, g as n, 'x' as label from range(1, 21) t(g)")
    use(project, "warehouse")
    assert run(project)["sent"] == 20
    assert run(project, "--full-resync")["sent"] == 20
    assert project.cli("reset", "t").exit_code == 0
    after = run(project)
    assert (after["sent"], after["added"]) == (20, 20), after
    assert run(project)["rows_fetched"] == 0


def test_preview_and_dry_run_change_nothing(project: Project) -> None:
    project.sql("create table people as select 'u' || g as id, g as n, 'x' as label from generate_series(1, 10) t(g)"
                if project.source_kind != "duckdb" else
                "create table people as select 'u' || g as id, g as n, 'x' as label from range(1, 11) t(g)")
    use(project, "warehouse")
    assert run(project)["sent"] == 10
    project.sql("update people set n = 0 where id = 'u4'")
    preview = project.cli("preview", "t")
    assert preview.exit_code == 0, preview.stdout
    assert "u4" in preview.stdout
    dry = project.run_json("t", "--dry-run")[1]["runs"][0]
    assert (dry["changed"], dry["sent"]) == (1, 0)
    assert not [t for t in bookkeeping_tables(project) if t.startswith("run_")]
    assert run(project)["sent"] == 1  # the dry run and the preview advanced nothing


def test_two_traits_at_once_in_one_process_on_one_duckdb_file(tmp_path: Path) -> None:
    """As the daemon runs them: threads of one process, each trait with its own bookkeeping file,
    the data file attached read-only by each."""
    import threading

    from traits.config import load_config
    from traits.pipeline.run import RunOptions, run_trait
    from traits.state import open_state

    project = Project(tmp_path, "duckdb", diff="warehouse")
    project.sql("create table people as select 'u' || g as id, g as n, 'x' as label from range(2000) t(g)")
    two = TRAIT + TRAIT.replace("  t:", "  t2:").replace("n, label", "n as n2")
    project.write(two)
    config = load_config(project.root)
    results: dict[str, Any] = {}

    def run_one(name: str) -> None:
        state = open_state(config)
        try:
            results[name] = run_trait(config, state, name, RunOptions())
        finally:
            state.close()

    for _ in range(2):
        threads = [threading.Thread(target=run_one, args=(n,)) for n in ("t", "t2")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert {n: r.record.status for n, r in results.items()} == {"t": "ok", "t2": "ok"}, {n: r.record.error for n, r in results.items()}
    assert {n: (r.record.sent, r.record.rows_fetched) for n, r in results.items()} == {"t": (0, 0), "t2": (0, 0)}
