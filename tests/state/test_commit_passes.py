"""The commit of a partly acknowledged run: its semi joins with the acknowledged ids run in passes
(each within the engine's memory limit) and record exactly what one join records."""

from __future__ import annotations

import pytest

from tests.conftest import Project
from tests.in_process import killed_at_write, run
from traits.state import sql as state_sql

TRAIT = """  t:
    kind: user
    source: wh
    sql: select id as user_id, n, label from people
    destinations: [out]
"""


@pytest.mark.parametrize("passes", [1, 3])
def test_a_partly_acknowledged_run_commits_in_passes_what_one_pass_commits(
    duck_project: Project, monkeypatch: pytest.MonkeyPatch, passes: int
) -> None:
    project = duck_project
    project.sql("create table people as select 'u' || range as id, range % 13 as n, 'v0' as label from range(300)")
    project.write(TRAIT, destinations="  out: {type: file, path: out/calls.jsonl, batch_size: 10}\n")
    assert run(project).record.sent == 300
    project.sql("update people set label = 'v1' where hash(id) % 4 = 0")
    project.sql("delete from people where hash(id) % 9 = 1")
    project.sql("insert into people select 'n' || range, range, 'new' from range(20)")
    seen: list[int] = []

    def forced(rows: int, id_bytes: float, memory_limit: int) -> int:
        seen.append(rows)
        return passes

    monkeypatch.setattr(state_sql, "join_passes", forced)
    killed_at_write(project, monkeypatch, writes=4)

    result = run(project)  # folds what the killed run had acknowledged, then sends the rest
    assert result.resumed is not None
    assert result.exit_code == 0
    assert seen, "a partly acknowledged commit was folded"
    import duckdb

    con = duckdb.connect(str(project.root / "wh.duckdb"), read_only=True)
    try:
        expected = {r[0]: {"label": r[2], "n": r[1]} for r in con.execute("select id, n, label from people").fetchall()}
    finally:
        con.close()
    assert project.final() == expected
    assert run(project).record.sent == 0
