"""The warehouse fold after a partly acknowledged run: the acknowledged changes are told from the
rest by a join in passes (each within the engine's memory limit), and a wholly acknowledged
first sync needs no join at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Project, make_project
from tests.in_process import killed_at_write, run
from traits.bookkeeping import fold as fold_module

TRAIT = """  t:
    kind: user
    source: wh
    sql: select id as user_id, n from people
    destinations: [out]
"""
BATCHES = "  out: {type: file, path: out/calls.jsonl, batch_size: 10}\n"


@pytest.fixture(params=["duckdb+warehouse", "postgres-adbc+warehouse"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    return make_project(request, tmp_path)


def _people(project: Project, rows: int) -> None:
    series = f"range({rows}) t(g)" if project.source_kind == "duckdb" else f"generate_series(0, {rows - 1}) t(g)"
    project.sql(f"create table people as select 'u' || g as id, g as n from {series}")


def test_a_partly_acknowledged_first_sync_folds_in_passes_and_resends_only_the_rest(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    _people(project, 60)
    project.write(TRAIT, destinations=BATCHES)
    passes: list[int] = []

    def three_passes(rows: int, id_bytes: float, memory_limit: int) -> int:
        passes.append(rows)
        return 3

    monkeypatch.setattr(fold_module, "join_passes", three_passes)
    killed_at_write(project, monkeypatch, writes=3)
    first = {c["userId"]: c["messageId"] for c in project.calls()}
    assert 10 <= len(first) <= 30

    result = run(project)
    assert result.resumed is not None
    assert result.exit_code == 0
    assert passes, "the fold of a partly acknowledged run joined in passes"
    calls = project.calls()
    assert project.final() == {f"u{i}": {"n": i} for i in range(60)}
    again = {c["userId"]: c["messageId"] for c in calls[len(first):]}
    assert set(again) | set(first) == {f"u{i}" for i in range(60)}
    assert all(again[k] == first[k] for k in set(again) & set(first)), "a call sent again keeps its messageId"
    assert len(calls) - len(set(first) | set(again)) <= 10  # at most the batch written while its predecessor was recorded

    # the warehouse snapshot holds every row as sent: nothing more to send, and a change is one call
    assert run(project).record.sent == 0
    project.sql("update people set n = 100 where id = 'u42'")
    changed = run(project)
    assert (changed.record.changed, changed.record.sent) == (1, 1)
    assert project.final()["u42"] == {"n": 100}


def test_a_wholly_acknowledged_first_sync_folds_without_a_join(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    _people(project, 40)
    project.write(TRAIT, destinations=BATCHES)

    def no_join(rows: int, id_bytes: float, memory_limit: int) -> int:
        raise AssertionError("every change was acknowledged: no join is needed")

    monkeypatch.setattr(fold_module, "join_passes", no_join)
    assert run(project).record.sent == 40
    assert run(project).record.sent == 0
    project.sql("update people set n = -1 where id = 'u7'")
    assert run(project).record.sent == 1
