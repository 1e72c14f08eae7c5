"""Runs interrupted at chosen points (in process, by an interrupt the run cannot catch)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Project
from traits.config import load_config
from traits.pipeline import run as run_module
from traits.pipeline.run import RunOptions, run_trait
from traits.state import open_state

TRAIT = """  t:
    kind: user
    source: wh
    sql: select id as user_id, n from people
    destinations: [out]
"""


class Killed(KeyboardInterrupt):
    """Stands for SIGKILL: not an Exception, so no handler in the run records anything."""


def run(project: Project) -> Any:
    config = load_config(project.root)
    state = open_state(config)
    try:
        return run_trait(config, state, "t", RunOptions())
    finally:
        state.close()


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

