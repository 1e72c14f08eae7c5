"""A first sync's change file written while staging holds exactly what the diff's own pass writes."""

from __future__ import annotations

import datetime as dt
import os
import time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from traits import columnar
from traits.config.models import Settings, Trait
from traits.pipeline.diff import LocalDiffer
from traits.pipeline.first_sync import FirstSyncFile
from traits.pipeline.stage import stage
from traits.pipeline.validate import CALL_SIZE_SQL, Fingerprinter, check_sizes
from traits.snapshot_format import Snapshot

UTC = dt.UTC


def _batch(start: int, rows: int) -> pa.RecordBatch:
    n = range(start, start + rows)
    return pa.RecordBatch.from_pydict({
        "user_id": [f"u{i}" if i % 97 else f'q"u{i}\\é\x01' for i in n],
        "plan": [None if i % 5 == 0 else ("free", "pro", "日本", "it's")[i % 4] for i in n],
        "visits": [i * 7 - 3 for i in n],
        "score": [i / 8 if i % 3 else None for i in n],
        "revenue": pa.array([Decimal(i) / 100 for i in n], pa.decimal128(12, 2)),
        "active": [i % 2 == 0 for i in n],
        "seen": pa.array([dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=i * 1237) for i in n], pa.timestamp("us", tz="UTC")),
        "born": pa.array([dt.date(1990, 1, 1) + dt.timedelta(days=i % 9000) for i in n], pa.date32()),
        "blob": [bytes([i % 256]) * 3 for i in n],
        "tags": [[f"t{i % 3}"] if i % 4 else [] for i in n],
    })


@pytest.mark.parametrize("decimals", ["number", "string"])
def test_the_file_written_while_staging_is_the_diffs_first_sync_file(tmp_path: Path, decimals: str) -> None:
    con = columnar.connect()
    try:
        trait = Trait.model_validate({"kind": "user", "source": "s", "sql": "select 1", "destinations": ["out"]})
        settings = Settings.model_validate({"allow_nested": True, "decimals": decimals})
        fingerprinter = Fingerprinter(con, "t", trait, settings)
        with FirstSyncFile(tmp_path / "first-sync.parquet", "run-1") as first:

            def augment(batch: pa.RecordBatch) -> pa.RecordBatch:
                staged = fingerprinter.add(batch)
                assert fingerprinter.shape is not None
                first.add(fingerprinter.shape, staged)
                return staged

            stage((_batch(s, 30_000) for s in range(0, 90_000, 30_000)), tmp_path / "result.parquet", trait="t", augment=augment)
            written = first.close()
        assert written is not None
        shape, summary = fingerprinter.finish(con, tmp_path / "result.parquet")

        def differ(first_sync_file: Path | None) -> LocalDiffer:
            return LocalDiffer(con, tmp_path / "result.parquet", shape, summary, lambda: None,
                               lambda _: Snapshot(), run_id="run-1", first_sync_file=first_sync_file)

        assert differ(None).diff("out", tmp_path / "copied.parquet", full_resync=False).added == 90_000
        linked = differ(written)
        assert linked.diff("out", tmp_path / "linked.parquet", full_resync=False).added == 90_000
        assert os.stat(tmp_path / "linked.parquet").st_ino == os.stat(written.path).st_ino  # taken as it is, not written again
        # the largest row's size, measured as the file was written, is what check_sizes would find
        largest = con.execute(f"select max({CALL_SIZE_SQL}) from read_parquet('{tmp_path / 'copied.parquet'}')").fetchone()
        assert largest is not None
        assert linked.largest_call("out") == largest[0]
        assert differ(None).largest_call("out") is None

        def read(name: str) -> str:
            return f"read_parquet('{tmp_path / name}')"

        assert con.execute(f"describe select * from {read('linked.parquet')}").fetchall() == con.execute(
            f"describe select * from {read('copied.parquet')}").fetchall()
        for a, b in (("linked.parquet", "copied.parquet"), ("copied.parquet", "linked.parquet")):
            assert con.execute(f"select count(*) from (select * from {read(a)} except all select * from {read(b)})").fetchone() == (0,)
        assert con.execute(f"select count(*), count(distinct id) from {read('linked.parquet')}").fetchone() == (90_000, 90_000)
    finally:
        con.close()


def test_a_staging_that_fails_leaves_no_file(tmp_path: Path) -> None:
    con = columnar.connect()
    try:
        trait = Trait.model_validate({"kind": "user", "source": "s", "sql": "select 1", "destinations": ["out"]})
        fingerprinter = Fingerprinter(con, "t", trait, Settings())
        path = tmp_path / "first-sync.parquet"
        staged = fingerprinter.add(_batch(0, 10).drop_columns(["tags"]))
        assert fingerprinter.shape is not None
        shape = fingerprinter.shape

        def stage_then_fail() -> None:
            with FirstSyncFile(path, "run-1") as first:
                first.add(shape, staged)
                deadline = time.monotonic() + 30  # the writer's thread has begun the file
                while not (tmp_path / "first-sync.parquet.tmp").exists():
                    assert time.monotonic() < deadline, "the writer never began its file"
                    time.sleep(0.01)
                raise RuntimeError("the warehouse went away")

        with pytest.raises(RuntimeError):
            stage_then_fail()
        assert list(tmp_path.iterdir()) == []
    finally:
        con.close()


def test_a_known_largest_row_that_fits_spares_reading_the_change_file(tmp_path: Path) -> None:
    import duckdb

    con = columnar.connect()
    try:
        missing = tmp_path / "never-written.parquet"
        check_sizes(con, "t", missing, max_call_bytes=32_000, largest=500)  # fits: the file is not read
        with pytest.raises(duckdb.IOException):
            check_sizes(con, "t", missing, max_call_bytes=32_000, largest=40_000)  # too large: read for the offenders
        with pytest.raises(duckdb.IOException):
            check_sizes(con, "t", missing, max_call_bytes=32_000)  # not known: read
    finally:
        con.close()
