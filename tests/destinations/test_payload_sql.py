"""The engine-built calls (``CallBuilder.select_sql``) are byte for byte the Python-built ones."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from traits.config.models import OnExitRules
from traits.pipeline.payloads import MESSAGE_NAMESPACE, CallBuilder, MessageIds, message_id

KEYS = ["u1", "é", 'quote"d', "back\\slash", "\x01control", "\u2028", "😀", "it's", "group:x", ""]


def relation(path: Path) -> str:
    return f"read_parquet('{path}')"


def _change_file(path: Path) -> Path:
    rows = []
    for i, key in enumerate(KEYS):
        rows.append((key, "added", i, json.dumps({"a": i, "s": "é"}, ensure_ascii=False), None if i % 2 else f"uid-{key}", None))
        rows.append((key + "-c", "changed", i, json.dumps({"a": i}), "" if i % 3 else None, json.dumps({"a": -1})))
        rows.append((key + "-e", "exited", None, None, None, json.dumps({"a": 1, "b": 2, key or "empty": i, "é\u2028": True}, ensure_ascii=False)))
        rows.append((key + "-k", "exited", None, None, None, json.dumps({"plan": "pro"})))
    columns = list(zip(*rows, strict=True))
    table = pa.table(
        {
            "id": pa.array(columns[0], pa.string()), "change": pa.array(columns[1], pa.string()), "row_hash": pa.array(columns[2], pa.uint64()),
            "values_json": pa.array(columns[3], pa.string()), "user_id": pa.array(columns[4], pa.string()), "old_values_json": pa.array(columns[5], pa.string()),
        }
    )
    pq.write_table(table, path)
    return path


RULES = {
    "clear": "clear",
    "keep": "keep",
    "columns": OnExitRules(default="keep", columns={"a": 0, "b": "clear", "é\u2028": "gone 'quoted' \"x\"", "u1": None}),
    "literals": OnExitRules(default="clear", columns={"plan": "keep", "a": False, "b": 1.5}),
}


@pytest.mark.parametrize("kind", ["user", "account"])
@pytest.mark.parametrize("send", ["row", "changed"])
@pytest.mark.parametrize("on_exit", list(RULES))
def test_engine_calls_equal_python_calls(tmp_path: Path, kind: str, send: str, on_exit: str) -> None:
    path = _change_file(tmp_path / "changes.parquet")
    builder = CallBuilder(
        trait="o'trait", kind=kind, destination="dest", run_id="20260101T000000-abc", timestamp="2026-01-01T00:00:00.000Z",  # type: ignore[arg-type]
        send=send, on_exit=RULES[on_exit],  # type: ignore[arg-type]
    )
    made = exits = 0
    # the row's own values: the engine returns them only for the rows it leaves to Python
    values = {r[0]: r[1:] for r in duckdb.sql(f"select id, values_json, user_id, old_values_json from read_parquet('{path}')").fetchall()}
    for key, change, _, values_json, user_id, old_values_json, mid, body in duckdb.sql(builder.select_sql(relation(path))).fetchall():
        assert (values_json, user_id, old_values_json) == ((None, None, None) if body is not None else values[key])
        python = builder.build(key, change, *values[key])
        if body is None:  # left to Python: changed rows when only changes are sent; exits that send nothing
            if change == "exited":
                assert python is None
            else:
                assert python is not None
                assert send == "changed"
                assert change == "changed"
            continue
        assert python is not None
        made += 1
        exits += change == "exited"
        assert mid == python.message_id
        assert body == python.body
        if change == "exited":
            assert json.loads(body)["context"]["traits_engine"]["change"] == "exited"
    # the rows holding only plan send nothing unless plan is cleared
    expected_exits = {"clear": 2 * len(KEYS), "keep": 0, "columns": len(KEYS), "literals": len(KEYS)}[on_exit]
    assert exits == expected_exits
    assert made - exits == (2 * len(KEYS) if send == "row" else len(KEYS))


def test_exit_values_per_column() -> None:
    builder = CallBuilder(
        trait="t", kind="user", destination="d", run_id="r", timestamp="2026-01-01T00:00:00.000Z", send="row",
        on_exit=OnExitRules(default="clear", columns={"plan": "keep", "open_tickets": 0, "tier": "free"}),
    )
    call = builder.build("u1", "exited", None, None, json.dumps({"open_tickets": 3, "plan": "pro", "score": 9, "tier": "gold"}))
    assert call is not None
    assert json.loads(call.body)["traits"] == {"open_tickets": 0, "score": None, "tier": "free"}
    assert builder.build("u2", "exited", None, None, json.dumps({"plan": "pro"})) is None


def test_fast_message_ids_are_uuid5() -> None:
    ids = MessageIds("dest", "trait", "identify", "run")
    for key in KEYS:
        expected = str(uuid.uuid5(MESSAGE_NAMESPACE, "\x1f".join(("dest", "trait", "identify", key, "run"))))
        assert ids(key) == expected == message_id("dest", "trait", "identify", key, "run")


@pytest.mark.parametrize("kind", ["user", "account"])
@pytest.mark.parametrize("on_exit", list(RULES))
def test_engine_lines_are_the_engine_bodies_and_keys_parse(tmp_path: Path, kind: str, on_exit: str) -> None:
    """The bulk form (``lines=True``) a file appends whole: each line is the body plus a newline,
    each key_json the id as JSON plus a newline, and a block of them joins into what is written."""
    from traits.destinations.base import CallBlock
    from traits.pipeline.deliver import joined

    path = _change_file(tmp_path / "changes.parquet")
    builder = CallBuilder(
        trait="o'trait", kind=kind, destination="dest", run_id="20260101T000000-abc", timestamp="2026-01-01T00:00:00.000Z",  # type: ignore[arg-type]
        send="row", on_exit=RULES[on_exit],  # type: ignore[arg-type]
    )
    bodies = duckdb.sql(builder.select_sql(relation(path))).fetchall()
    table = duckdb.sql(builder.select_sql(relation(path), lines=True)).to_arrow_table()
    lines = table.column("line").to_pylist()
    assert len(lines) == len(bodies)
    for (*_, body), line in zip(bodies, lines, strict=True):
        if body is None:
            assert line is None
        else:
            assert line.encode() == body + b"\n"
    import pyarrow.compute as pc

    sent = table.filter(pc.is_valid(table.column("line"))).combine_chunks()
    block = CallBlock(joined(sent.column("line").chunk(0)), joined(sent.column("key_json").chunk(0)), sent.num_rows)
    assert bytes(block.lines) == b"".join(line.encode() for line in lines if line is not None)
    assert block.identities() == sent.column("id").to_pylist()
    # a slice of a column (an offset into its buffers) is viewed from its own first value
    tail = sent.column("key_json").chunk(0).slice(3, 2)
    assert [json.loads(x) for x in bytes(joined(tail)).splitlines()] == sent.column("id").to_pylist()[3:5]
