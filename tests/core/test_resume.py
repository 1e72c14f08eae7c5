"""Runs interrupted at chosen points (in process, by an interrupt the run cannot catch)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Project
from tests.in_process import Killed, run
from traits.pipeline import run as run_module

TRAIT = """  t:
    kind: user
    source: wh
    sql: select id as user_id, n from people
    destinations: [out]
"""


def test_a_resumed_run_killed_again_before_delivering_still_resends_what_it_sent(duck_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project = duck_project
    project.sql("create table people as select 'u' || g as id, g as n from range(100) t(g)")
    project.write(TRAIT, destinations="  out: {type: file, path: out/calls.jsonl, batch_size: 10}\n")
    assert run(project).record.sent == 100
    project.sql("insert into people select 'new' || g, g from range(30) t(g)")

    # 1. killed mid-delivery, after a batch reached the file but before it was acknowledged
    import traits.destinations.file as file_destination

    real_write = file_destination._write
    writes = {"n": 0}

    def write_then_die(fd: int, batch: list[Any]) -> None:
        real_write(fd, batch)
        writes["n"] += 1
        if writes["n"] == 2:
            raise Killed

    monkeypatch.setattr(file_destination, "_write", write_then_die)
    with pytest.raises(Killed):
        run(project)
    monkeypatch.setattr(file_destination, "_write", real_write)
    sent_unacked = {c["userId"] for c in project.calls()[-10:]}
    assert sent_unacked <= {f"new{i}" for i in range(30)}

    # 2. its resume is killed too, before it delivers anything (while it diffs, in either mode)
    real_diff = run_module._Runner.diff_all

    def die(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(run_module._Runner, "diff_all", die)
    with pytest.raises(Killed):
        run(project)
    monkeypatch.setattr(run_module._Runner, "diff_all", real_diff)

    # 3. the rows it had sent unacknowledged leave the warehouse before the next start
    project.sql("delete from people where id like 'new%'")
    result = run(project)
    assert result.resumed is not None, "the interrupted run is resumed, not dropped"
    assert result.exit_code == 0
    assert project.final() == {f"u{i}": {"n": i} for i in range(100)}
    assert run(project).record.sent == 0



@pytest.mark.parametrize("duck_project", ["duckdb+warehouse"], indirect=True)
def test_a_warehouse_run_killed_after_its_tables_went_is_closed_not_resumed_with_new_values(
    duck_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after its commit dropped its tables but before its record was closed, a run has no
    result left to resume from. Resuming it would materialise the table as it is now under the
    old run_id: a changed row sent under the messageId a collector already has for its old
    value, and dropped there as a copy. It is closed; a fresh run (new messageIds) sends the change."""
    project = duck_project
    project.sql("create table people as select 'u' || g as id, g as n from range(20) t(g)")
    project.write(TRAIT)
    assert run(project).record.sent == 20
    project.sql("insert into people values ('a', 1)")

    def die(record: Any) -> None:
        raise Killed

    monkeypatch.setattr(run_module, "settle", die)  # right after the commit dropped the run's tables
    with pytest.raises(Killed):
        run(project)
    monkeypatch.undo()
    first = [c for c in project.calls() if c["userId"] == "a"]
    assert [c["traits"] for c in first] == [{"n": 1}]

    project.sql("update people set n = 7 where id = 'a'")
    result = run(project)
    assert result.exit_code == 0
    assert result.resumed is None or result.resumed.record.sent == 0
    last = [c for c in project.calls() if c["userId"] == "a"][-1]
    assert last["traits"] == {"n": 7}
    assert last["messageId"] != first[0]["messageId"], "the new value went out under the old call's messageId"
    assert project.final()["a"] == {"n": 7}
    assert run(project).record.sent == 0
