"""The local ack log: what it writes for calls and for engine-made blocks reads back as the same ids."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from traits import columnar
from traits.destinations.base import Call, CallBlock
from traits.pipeline.deliver import joined
from traits.state.local import LocalAckLog, acked_keys_sql

KEYS = ["u1", "é", 'quote"d', "back\\slash", "\x01control", "tab\there", "new\nline", "\u2028", "😀", "it's", "a,b", ""]


def test_calls_and_blocks_read_back_as_their_ids_and_a_torn_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "acks.jsonl"
    log = LocalAckLog(path)
    log.append([Call(key=k, change="added", message_id="m", body=b"{}") for k in KEYS])
    key_json = pa.array([json.dumps(k) + "\n" for k in KEYS]).slice(2, 5)  # an offset into the buffers, as a reader gives
    log.append_block(CallBlock(memoryview(b""), joined(key_json), len(key_json)))
    log.close()
    with open(path, "ab") as f:  # a log an older release wrote, then a writer killed mid-append
        f.write(json.dumps({"k": ["old1", "old\n2"]}).encode() + b"\n" + b'"torn')
    con = columnar.connect(tmp_path)
    try:
        read = [r[0] for r in con.execute(acked_keys_sql(path)).fetchall()]
    finally:
        con.close()
    assert sorted(read) == sorted([*KEYS, *KEYS[2:7], "old1", "old\n2"])  # the engine may read lines in parallel


def test_a_log_larger_than_the_engine_memory_is_read_in_bounded_pieces(tmp_path: Path) -> None:
    """A first sync's log holds every id it sent: at 100M ids 1.2 GiB, read while the engine's limit is 512 MB."""
    import duckdb

    path = tmp_path / "acks.jsonl"
    ids = 6_000_000  # ~84 MB of log against a 64 MB limit
    with open(path, "w") as f:
        for start in range(0, ids, 500_000):
            f.write("".join(f'"u{i:011d}"\n' for i in range(start, start + 500_000)))
    assert path.stat().st_size > 80 * 2**20
    con = duckdb.connect()
    try:
        con.execute("SET memory_limit = '64MB'")
        con.execute("SET threads = 2")
        con.execute("SET preserve_insertion_order = false")
        # streaming aggregates only: what is measured is the reader, not a hash table of the ids
        row = con.execute(f"select count(*), min(k), max(k) from ({acked_keys_sql(path)}) t(k)").fetchone()
    finally:
        con.close()
    assert row == (ids, "u00000000000", f"u{ids - 1:011d}")
