"""``held``, ``run``, ``count_runs`` and paged ``runs``: the store's reads for profiles and the console."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from traits.snapshot_format import Changes
from traits.state.base import StateStore
from traits.state.records import RunRecord

from .test_state_store import ack, snapshot


def changes(path: Path, rows: list[tuple[str, str, str | None, str | None]]) -> Path:
    """A change file: (id, change, values_json, old_values_json); row_hash is derived from values_json."""
    table = pa.table({
        "id": pa.array([r[0] for r in rows], pa.string()),
        "change": pa.array([r[1] for r in rows], pa.string()),
        "row_hash": pa.array([abs(hash(r[2])) % 2**63 if r[2] else None for r in rows], pa.uint64()),
        "values_json": pa.array([r[2] for r in rows], pa.string()),
        "user_id": pa.array([None] * len(rows), pa.string()),
        "old_values_json": pa.array([r[3] for r in rows], pa.string()),
    })
    pq.write_table(table, path)
    return path


def sync(store: StateStore, tmp_path: Path, run_id: str, rows: list[tuple[str, str, str | None, str | None]], acked: list[str]) -> None:
    path = changes(tmp_path / f"{run_id}.parquet", rows)
    ack(store, run_id, "t", "d", acked)
    store.commit(run_id, "t", "d", Changes(path))


def test_held_names_the_run_and_keeps_exits(store: StateStore, tmp_path: Path) -> None:
    one, two = json.dumps({"n": 1}), json.dumps({"n": 2})
    sync(store, tmp_path, "run-1", [("a", "added", one, None), ("b", "added", one, None), ("c", "added", one, None)], ["a", "b", "c"])
    held = store.held("t", "d", "a")
    assert held is not None
    assert (held.values, held.run_id, held.exited) == ({"n": 1}, "run-1", False)
    # a changed (acked), b exits (acked), c changes but is not acknowledged: it keeps run-1's values
    sync(store, tmp_path, "run-2", [("a", "changed", two, one), ("b", "exited", None, one), ("c", "changed", two, one)], ["a", "b"])
    a, b, c = (store.held("t", "d", i) for i in "abc")
    assert a is not None
    assert (a.values, a.run_id, a.exited) == ({"n": 2}, "run-2", False)
    assert b is not None
    assert (b.values, b.run_id, b.exited) == ({"n": 1}, "run-2", True)
    assert c is not None
    assert (c.values, c.run_id) == ({"n": 1}, "run-1")
    assert store.held("t", "d", "nobody") is None
    assert store.held("t", "other", "a") is None
    # the diff still sees only live rows
    assert set(snapshot(store, "t", "d")) == {"a", "c"}
    # b comes back: no longer exited
    sync(store, tmp_path, "run-3", [("b", "added", two, None)], ["b"])
    b = store.held("t", "d", "b")
    assert b is not None
    assert (b.values, b.run_id, b.exited) == ({"n": 2}, "run-3", False)
    store.reset("t")
    assert store.held("t", "d", "a") is None


def test_exits_survive_compaction(store: StateStore, tmp_path: Path) -> None:
    """Many small commits make the local store compact; the exit and the run names stay."""
    v = json.dumps({"n": 0})
    sync(store, tmp_path, "base", [(f"u{i}", "added", v, None) for i in range(10)], [f"u{i}" for i in range(10)])
    sync(store, tmp_path, "gone", [("u0", "exited", None, v)], ["u0"])
    for i in range(1, 10):
        new = json.dumps({"n": i})
        sync(store, tmp_path, f"r{i}", [(f"u{i}", "changed", new, v)], [f"u{i}"])
    assert len(store.snapshot_files("t", "d")) <= 9  # compacted at least once (local) or one export (Postgres)
    gone = store.held("t", "d", "u0")
    assert gone is not None
    assert (gone.exited, gone.run_id, gone.values) == (True, "gone", {"n": 0})
    last = store.held("t", "d", "u9")
    assert last is not None
    assert (last.run_id, last.values) == ("r9", {"n": 9})
    assert set(snapshot(store, "t", "d")) == {f"u{i}" for i in range(1, 10)}


def test_run_lookup_count_and_pages(store: StateStore) -> None:
    for i in range(7):
        store.save_run(RunRecord(run_id=f"r{i}", trait="a" if i % 2 == 0 else "b", started_at=f"2026-01-01T00:00:0{i}.000Z", status="ok"))
    assert store.count_runs() == 7
    assert store.count_runs("a") == 4
    assert store.count_runs("none") == 0
    found = store.run("r3")
    assert found is not None
    assert found.trait == "b"
    assert store.run("missing") is None
    assert [r.run_id for r in store.runs("a", limit=2)] == ["r6", "r4"]
    assert [r.run_id for r in store.runs("a", limit=2, offset=2)] == ["r2", "r0"]
    assert [r.run_id for r in store.runs(limit=3, offset=5)] == ["r1", "r0"]
