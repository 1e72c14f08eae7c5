"""Recorded run changes and pending exits, on every backend (``conftest.backend``)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from traits.snapshot_format import CHANGE_COLUMNS, Changes
from traits.state.base import StateStore
from traits.state.records import RunRecord

from .test_state_store import ack


def write_changes(path: Path, rows: list[tuple[str, str, int | None, str | None, int | None, str | None]]) -> Path:
    """(id, change, row_hash, values_json, old_row_hash, old_values_json) as ``pipeline.diff`` writes them."""
    table = pa.table({
        "id": pa.array([r[0] for r in rows], pa.string()), "change": pa.array([r[1] for r in rows], pa.string()),
        "row_hash": pa.array([r[2] for r in rows], pa.uint64()), "values_json": pa.array([r[3] for r in rows], pa.string()),
        "user_id": pa.array([None] * len(rows), pa.string()), "old_values_json": pa.array([r[5] for r in rows], pa.string()),
        "old_row_hash": pa.array([r[4] for r in rows], pa.uint64()), "old_user_id": pa.array([None] * len(rows), pa.string()),
    })
    pq.write_table(table, path)
    return path


def read(path: Path) -> dict[str, tuple[object, ...]]:
    rows = duckdb.sql(f"select {', '.join(CHANGE_COLUMNS)} from read_parquet('{path}')").fetchall()
    return {str(r[0]): tuple(r[1:]) for r in rows}


def test_a_commit_records_the_acknowledged_changes_with_before_and_after(store: StateStore, tmp_path: Path) -> None:
    changes = write_changes(tmp_path / "c.parquet", [
        ("a", "added", 1, '{"x":1}', None, None),
        ("b", "changed", 2, '{"x":2}', 20, '{"x":20}'),
        ("c", "exited", None, None, 30, '{"x":30}'),
        ("d", "added", 4, '{"x":4}', None, None),  # never acknowledged
    ])
    ack(store, "r1", "t", "seg", ["a", "b", "c"])
    store.commit("r1", "t", "seg", Changes(changes))
    store.commit("r1", "t", "seg", Changes(changes))  # idempotent
    out = tmp_path / "out.parquet"
    assert store.run_changes("r1", "t", "seg", out)
    got = read(out)
    assert set(got) == {"a", "b", "c"}
    assert got["a"] == ("added", None, None, None, 1, '{"x":1}', None)
    assert got["b"] == ("changed", 20, '{"x":20}', None, 2, '{"x":2}', None)
    assert got["c"] == ("exited", 30, '{"x":30}', None, None, None, None)
    assert not store.run_changes("r2", "t", "seg", tmp_path / "none.parquet")
    assert not store.run_changes("r1", "t", "other", tmp_path / "none.parquet")
    store.prune_changes(3600.0)  # younger than an hour: kept
    assert store.run_changes("r1", "t", "seg", out)
    store.prune_changes(-1.0)  # everything is older than "a second from now"
    assert not store.run_changes("r1", "t", "seg", out)


def test_pending_exits_round_trip_and_reset(store: StateStore, tmp_path: Path) -> None:
    assert store.pending_exits("t", "seg") is None
    pending = tmp_path / "pending.parquet"
    pq.write_table(pa.table({
        "id": pa.array(["u1", "u'2"], pa.string()), "first_missing_at": pa.array(["2026-01-01T00:00:00.000Z"] * 2, pa.string()),
        "misses": pa.array([1, 2], pa.int32()), "run_id": pa.array(["r1", "r1"], pa.string()),
    }), pending)
    store.save_pending_exits("t", "seg", pending)
    found = store.pending_exits("t", "seg")
    assert found is not None
    rows = sorted(duckdb.sql(f"select id, first_missing_at, misses, run_id from read_parquet('{found}')").fetchall())
    assert rows == [("u'2", "2026-01-01T00:00:00.000Z", 2, "r1"), ("u1", "2026-01-01T00:00:00.000Z", 1, "r1")]
    store.save_pending_exits("t", "seg", pending)  # replaces, never adds up
    found = store.pending_exits("t", "seg")
    assert found is not None
    assert duckdb.sql(f"select count(*) from read_parquet('{found}')").fetchall() == [(2,)]
    # a reset forgets them with the snapshot
    changes = write_changes(tmp_path / "c.parquet", [("u1", "added", 1, '{"x":1}', None, None)])
    ack(store, "r1", "t", "seg", ["u1"])
    store.commit("r1", "t", "seg", Changes(changes))
    store.reset("t", "seg")
    assert store.pending_exits("t", "seg") is None


def test_find_run(store: StateStore) -> None:
    store.save_run(RunRecord(run_id="r-1", trait="t", started_at="2026-01-01T00:00:00.000Z", reverts="r-0"))
    found = store.find_run("r-1")
    assert found is not None
    assert found.reverts == "r-0"
    assert store.find_run("nope") is None
