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
