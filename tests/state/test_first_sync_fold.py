"""A first sync's change file, every row acknowledged, becomes the snapshot's delta and the run's
changes as it is (``snapshot_format.delta_columns_sql``); with some rows unacknowledged, only the
acknowledged ones advance the snapshot. Either way the snapshot and the recorded changes read
the same as when the rows are written again."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from traits import columnar
from traits.snapshot_format import CHANGE_COLUMNS, Changes, delta_columns_sql
from traits.state.base import StateStore

from .test_state_store import ack

RUN = "20261201T000000-aaaaaaaa"


def first_sync_changes(path: Path, ids: list[str], value: int = 1) -> Path:
    """A change file as ``LocalDiffer`` writes it on a first sync, snapshot columns included."""
    con = columnar.connect(path.parent)
    try:
        rows = ", ".join(f"('{i}', {n})" for n, i in enumerate(ids))
        con.execute(
            f"""COPY (
                select id, 'added' as change, hash(id)::ubigint as row_hash, '{{"x":{value}}}' as values_json, cast(null as varchar) as user_id,
                       cast(null as ubigint) as old_row_hash, cast(null as varchar) as old_values_json, cast(null as varchar) as old_user_id,
                       {delta_columns_sql(RUN)}
                from (values {rows}) t(id, n)
            ) TO '{columnar.sql_path(path)}' (FORMAT parquet)"""
        )
    finally:
        con.close()
    return path


def recorded(store: StateStore, tmp_path: Path) -> dict[str, tuple[object, ...]]:
    out = tmp_path / "recorded.parquet"
    assert store.run_changes(RUN, "t", "seg", out)
    rows = duckdb.sql(f"select {', '.join(CHANGE_COLUMNS)} from read_parquet('{out}')").fetchall()
    return {str(r[0]): tuple(r[1:]) for r in rows}


@pytest.mark.parametrize("acked", [["a", "b", "c"], ["a", "c"]], ids=["all acknowledged", "some acknowledged"])
def test_a_first_sync_advances_by_what_was_acknowledged(store: StateStore, tmp_path: Path, acked: list[str]) -> None:
    changes = first_sync_changes(tmp_path / "changes.parquet", ["a", "b", "c"])
    ack(store, RUN, "t", "seg", acked)
    store.commit(RUN, "t", "seg", Changes(changes))
    for key in ["a", "b", "c"]:
        held = store.held("t", "seg", key)
        if key in acked:
            assert held is not None
            assert (held.values, held.run_id, held.exited) == ({"x": 1}, RUN, False)
        else:
            assert held is None
    got = recorded(store, tmp_path)
    assert set(got) == set(acked)
    assert got["a"][:4] == ("added", None, None, None)
    assert got["a"][5] == '{"x":1}'
    # a resumed run's diff replaces the change file: what was committed stays as it was
    first_sync_changes(changes, ["a", "b", "c"], value=2)
    held = store.held("t", "seg", "a")
    assert held is not None
    assert held.values == {"x": 1}
    assert recorded(store, tmp_path)["a"][5] == '{"x":1}'


def test_an_id_acknowledged_twice_is_not_taken_for_every_row(store: StateStore, tmp_path: Path) -> None:
    changes = first_sync_changes(tmp_path / "changes.parquet", ["a", "b"])
    ack(store, RUN, "t", "seg", ["a", "a"])  # as many acknowledgements as rows, not the same ids
    store.commit(RUN, "t", "seg", Changes(changes))
    assert store.held("t", "seg", "a") is not None
    assert store.held("t", "seg", "b") is None
