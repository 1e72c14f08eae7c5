"""``exit_after`` by duration and by runs, and its config forms, on the local store."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from traits import columnar
from traits.config.models import ExitAfter, Trait
from traits.pipeline.exits import hold_back, pending_path
from traits.state.local import LocalStateStore


def _changes(path: Path, exited: list[str], changed: list[str]) -> Path:
    ids = exited + changed
    pq.write_table(pa.table({
        "id": pa.array(ids, pa.string()), "change": pa.array(["exited"] * len(exited) + ["changed"] * len(changed), pa.string()),
        "row_hash": pa.array([None] * len(exited) + [1] * len(changed), pa.uint64()), "values_json": pa.array([None] * len(exited) + ['{"a":1}'] * len(changed), pa.string()),
        "user_id": pa.array([None] * len(ids), pa.string()), "old_values_json": pa.array(['{"a":0}'] * len(ids), pa.string()),
        "old_row_hash": pa.array([0] * len(ids), pa.uint64()), "old_user_id": pa.array([None] * len(ids), pa.string()),
    }), path)
    return path


def _ids(path: Path, change: str) -> list[str]:
    import duckdb

    return sorted(str(r[0]) for r in duckdb.sql(f"select id from read_parquet('{path}') where change = '{change}'").fetchall())


def _hold(store: LocalStateStore, changes: Path, exit_after: ExitAfter, run_id: str, at: str, exited: int) -> tuple[int, int, list[dict[str, object]]]:
    con = columnar.connect()
    try:
        held = hold_back(con, store, "t", "d", changes, exit_after=exit_after, run_id=run_id, started_at=at, exited=exited)
    finally:
        con.close()
    store.save_pending_exits("t", "d", pending_path(changes, "d"))  # what commit does
    return held.exited, held.pending, held.shown


def test_a_duration_holds_exits_until_the_id_has_been_missing_that_long(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path / "state")
    rule = ExitAfter(seconds=86400.0)
    first = _changes(tmp_path / "1.parquet", ["a", "b"], ["c"])
    exited, pending, shown = _hold(store, first, rule, "r1", "2026-01-01T00:00:00.000Z", 2)
    assert (exited, pending) == (0, 2)
    assert _ids(first, "exited") == []
    assert _ids(first, "changed") == ["c"]
    assert shown[0]["exits"] == "at the first run after 2026-01-02T00:00:00Z"
    # 23 hours on: still pending; b came back meanwhile and is forgotten
    second = _changes(tmp_path / "2.parquet", ["a"], [])
    assert _hold(store, second, rule, "r2", "2026-01-01T23:00:00.000Z", 1)[:2] == (0, 1)
    # a day on: a exits; b, missing again, starts over
    third = _changes(tmp_path / "3.parquet", ["a", "b"], [])
    assert _hold(store, third, rule, "r3", "2026-01-02T00:00:01.000Z", 2)[:2] == (1, 1)
    assert _ids(third, "exited") == ["a"]


def test_a_resumed_run_does_not_count_a_miss_twice(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path / "state")
    rule = ExitAfter(runs=2)
    assert _hold(store, _changes(tmp_path / "1.parquet", ["a"], []), rule, "r1", "2026-01-01T00:00:00.000Z", 1)[:2] == (0, 1)
    # r2 counted its miss and committed, then was killed and resumed: the same run, the same count
    assert _hold(store, _changes(tmp_path / "2.parquet", ["a"], []), rule, "r2", "2026-01-01T01:00:00.000Z", 1)[:2] == (1, 0)
    assert _hold(store, _changes(tmp_path / "3.parquet", ["a"], []), rule, "r2", "2026-01-01T01:00:00.000Z", 1)[:2] == (1, 0)
    pending = store.pending_exits("t", "d")
    assert pending is not None
    import duckdb

    assert duckdb.sql(f"select misses from read_parquet('{pending}')").fetchall() == [(2,)]


def test_exit_after_and_on_exit_config_forms() -> None:
    base = {"kind": "user", "source": "wh", "sql": "select 1"}
    assert Trait.model_validate({**base, "exit_after": 3}).exit_after == ExitAfter(runs=3)
    assert Trait.model_validate({**base, "exit_after": "24h"}).exit_after == ExitAfter(seconds=86400.0)
    assert Trait.model_validate(base).exit_after is None
    for bad in (0, "soon", True):
        with pytest.raises(ValueError, match="exit_after"):
            Trait.model_validate({**base, "exit_after": bad})
    rules = Trait.model_validate({**base, "on_exit": {"default": "keep", "columns": {"plan": 0, "tier": "free", "x": None}}}).on_exit
    assert not isinstance(rules, str)
    assert rules.columns == {"plan": 0, "tier": "free", "x": None}
    with pytest.raises(ValueError, match="default"):
        Trait.model_validate({**base, "on_exit": {"default": "drop"}})
