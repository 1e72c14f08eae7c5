"""The state store contract, run against every backend (``conftest.backend``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from traits.destinations.base import Call
from traits.errors import LockedError
from traits.snapshot_format import Changes, latest_rows
from traits.state.base import StateStore
from traits.state.records import DestinationCounts, RunRecord

from .conftest import Backend

ROOT = Path(__file__).resolve().parents[2]


# -- helpers -----------------------------------------------------------------------------------
def write_changes(path: Path, rows: list[tuple[str, str, int | None, str | None]]) -> Path:
    """A change file as ``pipeline.diff`` writes it: (id, change, row_hash, values_json, user_id, old_values_json)."""
    table = pa.table(
        {
            "id": pa.array([r[0] for r in rows], pa.string()),
            "change": pa.array([r[1] for r in rows], pa.string()),
            "row_hash": pa.array([r[2] for r in rows], pa.uint64()),
            "values_json": pa.array([r[3] for r in rows], pa.string()),
            "user_id": pa.array([None] * len(rows), pa.string()),
            "old_values_json": pa.array([None] * len(rows), pa.string()),
        }
    )
    pq.write_table(table, path)
    return path


def ack(store: StateStore, run_id: str, trait: str, destination: str, ids: list[str]) -> None:
    log = store.ack_log(run_id, trait, destination)
    try:
        log.append([Call(key=i, change="added", message_id=f"m-{i}", body=b"{}") for i in ids])
    finally:
        log.close()


def snapshot(store: StateStore, trait: str, destination: str) -> dict[str, tuple[int, str]]:
    files = store.snapshot_files(trait, destination)
    if not files:
        return {}
    con = duckdb.connect()
    try:
        rows = con.sql(latest_rows(con, files)).fetchall()
    finally:
        con.close()
    return {str(r[0]): (int(r[1]), str(r[2])) for r in rows}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# a large hash, to check the unsigned 64-bit values survive the round trip
BIG = 2**64 - 5


# -- history -----------------------------------------------------------------------------------
def test_history_round_trip(store: StateStore) -> None:
    first = RunRecord(run_id="r1", trait="a", started_at="2026-01-01T00:00:00.000Z")
    store.save_run(first)
    first.status = "ok"
    first.rows, first.sent = 10, 7
    first.error = "quote ' and \" and ünïcode"
    first.destinations["file"] = DestinationCounts(added=7, sent=7, status="ok", rejections=[{"id": "x", "reason": "400"}])
    store.save_run(first)
    store.save_run(RunRecord(run_id="r2", trait="b", started_at="2026-01-01T00:00:01.000Z", status="failed"))
    store.save_run(RunRecord(run_id="r3", trait="a", started_at="2026-01-01T00:00:02.000Z", status="guarded"))

    assert [r.run_id for r in store.runs()] == ["r3", "r2", "r1"]
    assert [r.run_id for r in store.runs("a")] == ["r3", "r1"]
    assert [r.run_id for r in store.runs(limit=1)] == ["r3"]
    back = store.runs("a")[1]
    assert back == first
    assert back.destinations["file"].rejections == [{"id": "x", "reason": "400"}]
    assert [r.run_id for r in store.iter_runs("b")] == ["r2"]


def test_interrupted_run(store: StateStore) -> None:
    assert store.interrupted_run("a") is None
    store.save_run(RunRecord(run_id="old", trait="a", started_at="2026-01-01T00:00:00.000Z", status="ok"))
    store.save_run(RunRecord(run_id="killed", trait="a", started_at="2026-01-01T00:00:01.000Z", phase="deliver"))
    store.save_run(RunRecord(run_id="other", trait="b", started_at="2026-01-01T00:00:02.000Z"))
    found = store.interrupted_run("a")
    assert found is not None
    assert (found.run_id, found.phase, found.status) == ("killed", "deliver", "running")
    found.status = "ok"
    store.save_run(found)
    assert store.interrupted_run("a") is None


def test_values(store: StateStore, open_store: Callable[[], StateStore]) -> None:
    assert store.get_value("next_run:a") is None
    store.set_value("next_run:a", {"at": "2026-01-01T00:00:00Z", "n": 1})
    store.set_value("next_run:a", {"at": "2026-01-02T00:00:00Z", "n": 2})
    assert open_store().get_value("next_run:a") == {"at": "2026-01-02T00:00:00Z", "n": 2}


# -- locks -------------------------------------------------------------------------------------
HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[4])
from tests.state.conftest import open_backend
store = open_backend(sys.argv[1], sys.argv[2], sys.argv[3])
with store.lock("a", "daemon pid " + str(__import__("os").getpid())):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_lock_excludes_other_processes_and_dies_with_its_holder(backend: Backend, store: StateStore) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, backend.kind, backend.location, str(backend.work_dir), str(ROOT)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=f"trait a is already running \\(daemon pid {child.pid}\\)"), store.lock("a", "me"):
            pass
        assert store.lock_holder("a") == f"daemon pid {child.pid}"
        # another trait is not held
        with store.lock("b", "me"):
            assert store.lock_holder("b") == "me"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        wait_for(lambda: store.lock_holder("a") is None, "the dead holder's lock to be released")
        with store.lock("a", "me"):
            assert store.lock_holder("a") == "me"
        assert store.lock_holder("a") is None
    finally:
        child.kill()
        child.wait()


def test_lock_is_exclusive_within_a_process(store: StateStore, open_store: Callable[[], StateStore]) -> None:
    other = open_store()
    with store.lock("a", "first"), pytest.raises(LockedError, match="first"), other.lock("a", "second"):
        pass
    with other.lock("a", "second"):
        assert store.lock_holder("a") == "second"


def test_asking_who_runs_a_trait_never_makes_a_run_fail(backend: Backend, store: StateStore, open_store: Callable[[], StateStore]) -> None:
    """``status`` and the console ask who holds a trait's lock all the time: a run starting
    while one of them asks must still get it."""
    prober = open_store()
    stop = threading.Event()
    answers: set[str | None] = set()

    def probe() -> None:
        while not stop.is_set():
            answers.add(prober.lock_holder("a"))

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        for _ in range(400 if backend.kind == "local" else 40):
            with store.lock("a", "runner"):
                pass
    finally:
        stop.set()
        thread.join()
    # (a Postgres holder names itself just after taking the lock: "another process" until then)
    assert answers <= {None, "runner", "another process"}, answers


# -- snapshots ---------------------------------------------------------------------------------
def test_commit_is_idempotent(store: StateStore, tmp_path: Path) -> None:
    tricky = '{"x":"é,\\"q\\"\n"}'  # quotes, a comma and a newline: CSV must carry them
    changes = write_changes(tmp_path / "c1.parquet", [("a", "added", 1, '{"x":1}'), ("b", "added", BIG, tricky), ("", "added", 3, "{}")])
    ack(store, "r1", "t", "d", ["a", "b", ""])
    assert store.has_acks("r1", "t", "d")
    store.commit("r1", "t", "d", Changes(changes))
    first = snapshot(store, "t", "d")
    assert first == {"a": (1, '{"x":1}'), "b": (BIG, tricky), "": (3, "{}")}
    assert not store.has_acks("r1", "t", "d")
    store.commit("r1", "t", "d", Changes(changes))
    assert snapshot(store, "t", "d") == first
    assert store.snapshot_destinations("t") == ["d"]

    # a second run: b changed, a exited; acked twice (a resumed run re-acks), committed twice
    changes2 = write_changes(tmp_path / "c2.parquet", [("b", "changed", 5, '{"x":5}'), ("a", "exited", None, None)])
    ack(store, "r2", "t", "d", ["b", "a"])
    ack(store, "r2", "t", "d", ["b"])
    store.commit("r2", "t", "d", Changes(changes2))
    store.commit("r2", "t", "d", Changes(changes2))
    assert snapshot(store, "t", "d") == {"b": (5, '{"x":5}'), "": (3, "{}")}


def test_commit_after_partial_acks(store: StateStore, tmp_path: Path) -> None:
    changes = write_changes(tmp_path / "c.parquet", [(k, "added", i, f'{{"n":{i}}}') for i, k in enumerate("abcd")])
    ack(store, "r1", "t", "d", ["a", "c"])
    ack(store, "r1", "t", "other", ["b"])
    store.commit("r1", "t", "d", Changes(changes))
    assert snapshot(store, "t", "d") == {"a": (0, '{"n":0}'), "c": (2, '{"n":2}')}
    # the other destination's acks are its own
    assert store.has_acks("r1", "t", "other")
    store.commit("r1", "t", "other", Changes(changes))
    assert snapshot(store, "t", "other") == {"b": (1, '{"n":1}')}
    # nothing acknowledged: nothing committed, no snapshot appears
    store.commit("r1", "t", "none", Changes(changes))
    assert store.snapshot_files("t", "none") == []
    assert sorted(store.snapshot_destinations("t")) == ["d", "other"]


def test_snapshot_survives_reopening(store: StateStore, open_store: Callable[[], StateStore], tmp_path: Path) -> None:
    changes = write_changes(tmp_path / "c.parquet", [("a", "added", 1, "{}")])
    ack(store, "r1", "t", "d", ["a"])
    store.close()
    store.commit("r1", "t", "d", Changes(changes))
    assert snapshot(open_store(), "t", "d") == {"a": (1, "{}")}


def test_reset(store: StateStore, tmp_path: Path) -> None:
    changes = write_changes(tmp_path / "c.parquet", [("a", "added", 1, "{}"), ("b", "added", 2, "{}")])
    for destination in ("d1", "d2"):
        ack(store, "r1", "t", destination, ["a", "b"])
        store.commit("r1", "t", destination, Changes(changes))
    assert store.reset("t", "d1") == ["d1"]
    assert snapshot(store, "t", "d1") == {}
    assert snapshot(store, "t", "d2") == {"a": (1, "{}"), "b": (2, "{}")}
    assert sorted(store.reset("t")) == ["d2"]
    assert store.snapshot_files("t", "d2") == []
    assert store.snapshot_destinations("t") == []
    # a snapshot starts again from nothing after a reset
    ack(store, "r2", "t", "d1", ["b"])
    store.commit("r2", "t", "d1", Changes(changes))
    assert snapshot(store, "t", "d1") == {"b": (2, "{}")}


WRITER = """
import sys
sys.path.insert(0, sys.argv[4])
from pathlib import Path
from tests.state.conftest import open_backend
from tests.state.test_state_store import ack, write_changes
from traits.snapshot_format import Changes
store = open_backend(sys.argv[1], sys.argv[2], sys.argv[3])
ids = [f"u{i}" for i in range(200)]
for gen in range(1, int(sys.argv[5]) + 1):
    changes = write_changes(Path(sys.argv[6]) / f"g{gen}.parquet", [(i, "changed", gen, f'{{"gen":{gen}}}') for i in ids])
    ack(store, f"r{gen}", "t", "d", ids)
    store.commit(f"r{gen}", "t", "d", Changes(changes))
print("done", flush=True)
"""


def test_readers_see_whole_snapshots_while_a_writer_commits(backend: Backend, store: StateStore, tmp_path: Path) -> None:
    """Every read sees one generation whole: never a mix, never a missing file."""
    generations = 15
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, backend.kind, backend.location, str(backend.work_dir), str(ROOT), str(generations), str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )
    seen: set[int] = set()
    errors: list[BaseException] = []

    def read() -> None:
        reader = backend.open()
        try:
            while writer.poll() is None:
                rows = snapshot(reader, "t", "d")
                if rows:
                    gens = {h for h, _ in rows.values()}
                    assert len(rows) == 200, f"a partial snapshot: {len(rows)} rows"
                    assert len(gens) == 1, f"a mixed snapshot: generations {sorted(gens)}"
                    seen.update(gens)
        except BaseException as e:
            errors.append(e)
        finally:
            reader.close()

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        assert writer.wait(timeout=120) == 0
    finally:
        writer.kill()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert {h for h, _ in snapshot(store, "t", "d").values()} == {generations}
    assert len(seen) >= 2, "the readers ran while the writer committed"


def test_run_dir_is_local(store: StateStore) -> None:
    path = store.run_dir("r1")
    assert path.is_dir()
    assert os.access(path, os.W_OK)


def test_snapshot_keeps_the_user_id_and_the_hash_canary(store: StateStore, tmp_path: Path) -> None:
    from traits.snapshot_format import HASH_CANARY_SQL

    path = tmp_path / "c.parquet"
    write_changes(path, [("acme", "added", 1, '{"plan":"pro"}'), ("solo", "added", 2, "{}")])
    table = pq.read_table(path)
    table = table.set_column(table.schema.get_field_index("user_id"), "user_id", pa.array(["u-1", ""], pa.string()))
    pq.write_table(table, path)
    ack(store, "r1", "t", "d", ["acme", "solo"])
    store.commit("r1", "t", "d", Changes(path))
    con = duckdb.connect()
    try:
        canary = con.execute(f"select {HASH_CANARY_SQL}").fetchone()[0]  # type: ignore[index]
        files = store.snapshot_files("t", "d")
        rows = con.execute(f"select id, user_id, hash_canary from ({latest_rows(con, files)}) order by id").fetchall()
    finally:
        con.close()
    assert rows == [("acme", "u-1", canary), ("solo", "", canary)]


def test_postgres_exports_one_file_per_hash_canary(backend: Backend, store: StateStore, tmp_path: Path) -> None:
    """Rows folded by engines with different hash functions land in different files (the differ rehashes per file)."""
    if backend.kind != "postgres":
        pytest.skip("a Postgres store detail")
    import psycopg

    from traits.state.postgres import PostgresStateStore

    assert isinstance(store, PostgresStateStore)
    changes = write_changes(tmp_path / "c.parquet", [("a", "added", 1, "{}"), ("b", "added", 2, "{}")])
    ack(store, "r1", "t", "d", ["a", "b"])
    store.commit("r1", "t", "d", Changes(changes))
    assert len(store.snapshot_files("t", "d")) == 1
    with psycopg.connect(store.dsn, autocommit=True) as conn:
        conn.execute(f"update {store.s}.snapshot_rows set hash_canary = 12345 where id = 'a'")
        conn.execute(f"update {store.s}.snapshots set version = version + 1, token = 'x'")
    files = store.snapshot_files("t", "d")
    assert len(files) == 2
    con = duckdb.connect()
    try:
        rows = con.execute(f"select id, hash_canary from ({latest_rows(con, files)}) order by id").fetchall()
    finally:
        con.close()
    assert rows[0] == ("a", 12345 + 2**63)
    assert rows[1][0] == "b"
