"""The local diff's join split into several passes (a result too large for one join in the
engine's memory) finds exactly what one join finds."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Project
from traits import columnar
from traits.columnar import join_passes
from traits.pipeline import diff

TRAIT = """  t:
    kind: user
    source: wh
    sql: select id as user_id, n, label from people
    destinations: [out]
    max_exit_ratio: 1
"""


def test_join_passes_grow_with_the_rows_and_the_ids_and_shrink_with_the_memory() -> None:
    mib = 2**20
    assert join_passes(10_000_000, 8, 488 * mib) == 1  # the 10M bench at the default limit: one join
    assert join_passes(100_000_000, 8, 488 * mib) == 4  # at 100M, one join ran out of memory
    assert join_passes(100_000_000, 36, 488 * mib) > join_passes(100_000_000, 8, 488 * mib)  # long ids are not held inline
    assert join_passes(100_000_000, 8, 4096 * mib) == 1
    assert join_passes(10**12, 8, mib) == columnar.MAX_JOIN_PASSES
    assert join_passes(0, 0, mib) == 1


def rows(project: Project, sql: str) -> list[tuple[Any, ...]]:
    import duckdb

    con = duckdb.connect(str(project.root / "wh.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("project", ["duckdb"], indirect=True)
@pytest.mark.parametrize("passes", [1, 3])
def test_a_join_in_several_passes_finds_what_one_finds(project: Project, monkeypatch: pytest.MonkeyPatch, passes: int) -> None:
    monkeypatch.setattr(diff, "join_passes", lambda rows, id_bytes, memory: passes)
    project.sql("create table people as select 'u' || range as id, range % 13 as n, 'v0' as label from range(3000)")
    project.write(TRAIT)
    code, first = project.run_json("t")
    assert (code, first["runs"][0]["added"]) == (0, 3000)
    project.sql("update people set label = 'v1' where hash(id) % 10 = 0")
    project.sql("delete from people where hash(id) % 25 = 1")
    project.sql("insert into people select 'n' || range, range, 'new' from range(40)")
    changed = rows(project, "select count(*) from people where label = 'v1'")[0][0]
    exited = 3000 - rows(project, "select count(*) from people where id like 'u%'")[0][0]
    assert changed > 100
    assert exited > 50
    code, run = project.run_json("t")
    r = run["runs"][0]
    assert code == 0
    assert (r["added"], r["changed"], r["exited"], r["unchanged"]) == (40, changed, exited, 3000 - exited - changed)
    assert project.final() == {row[0]: {"label": row[2], "n": row[1]} for row in rows(project, "select id, n, label from people")}
    code, again = project.run_json("t")
    assert (again["runs"][0]["changed"], again["runs"][0]["sent"]) == (0, 0)
