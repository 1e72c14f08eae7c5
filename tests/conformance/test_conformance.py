"""One conformance suite every warehouse passes: streaming, types, row cap, timeout, errors, a run.

Parametrized over DuckDB, Postgres (ADBC and psycopg), Redshift, Snowflake, BigQuery, and the
SQLAlchemy source on MariaDB and on DuckDB (see ``conftest.py`` for what stands in for the
servers that cannot run here).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from traits import columnar
from traits.config import load_config
from traits.config.models import Settings, Trait
from traits.errors import ValidationError, WarehouseError
from traits.pipeline.query import fetch
from traits.pipeline.run import RunOptions, run_trait
from traits.pipeline.stage import stage
from traits.pipeline.validate import check_shape, duck_types
from traits.state import open_state

from .engines import EXPECTED_TYPES, SYNTAX_ERROR, Engine

#: how long a stopped query may take to come back, past its 1 s statement_timeout
TIMEOUT_DEADLINE = 20.0


def test_streams_a_result_larger_than_one_batch(engine: Engine, config_dir: Path) -> None:
    with engine.warehouse(config_dir) as wh:
        batches = list(wh.stream(engine.dialect.numbers(), max_rows=10_000))
    assert len(batches) >= 2, "2,500 rows at batch_rows = 1,000 must come in more than one batch"
    ids = [v for b in batches for v in b.column("user_id").to_pylist()]
    assert sorted(ids) == sorted(f"u{n}" for n in range(1, 2501))
    assert all(b.schema.names == ["user_id", "n"] for b in batches)


def test_empty_result_still_has_its_schema(engine: Engine, config_dir: Path) -> None:
    with engine.warehouse(config_dir) as wh:
        batches = list(wh.stream(engine.dialect.numbers() + " where n < 0", max_rows=10))
    assert sum(b.num_rows for b in batches) == 0
    assert batches, "an empty result still yields one batch carrying the schema"
    assert batches[0].schema.names == ["user_id", "n"]


def test_every_type_maps_to_the_same_json(engine: Engine, config_dir: Path, tmp_path: Path) -> None:
    with engine.warehouse(config_dir) as wh:
        staged = stage(wh.stream(engine.dialect.types, max_rows=10), tmp_path / "staged.parquet", trait="types")
    settings = Settings(allow_nested=True, allow_non_finite=True)
    trait = Trait(kind="user", source="wh", sql="-")
    con = columnar.connect(tmp_path)
    try:
        shape = check_shape("types", trait, settings, staged.schema, duck_types(con, staged.path))
        row = con.execute(f"select {shape.id_sql}, {shape.v_sql} from read_parquet('{staged.path}')").fetchone()
    finally:
        con.close()
    assert row is not None
    assert row[0] == "u1"
    values: dict[str, Any] = json.loads(row[1])
    for name, expected in EXPECTED_TYPES.items():
        # compared as JSON text, so 1 is not true and 1.0 is not 1
        assert json.dumps(values.get(name)) == json.dumps(expected), f"{engine.name}: {name} = {values.get(name)!r}, expected {expected!r}"
    assert set(values) == set(EXPECTED_TYPES)


def test_known_ids_finds_only_existing_ids(engine: Engine, config_dir: Path) -> None:
    with engine.warehouse(config_dir) as wh:
        assert wh.known_ids(f"{engine.conf}.numbers", "n", ["1", "2500", "99999", "it's"]) == {"1", "2500"}


def test_stops_one_row_past_max_rows(engine: Engine, config_dir: Path) -> None:
    with engine.warehouse(config_dir) as wh:
        read = sum(b.num_rows for b in wh.stream(engine.dialect.numbers(), max_rows=100))
        assert read == 101, "the warehouse itself stops one row past the cap"
        with pytest.raises(ValidationError, match="more than max_rows = 100"):
            for _ in fetch(wh, engine.dialect.numbers(), max_rows=100, trait="capped"):
                pass


def test_statement_timeout_stops_a_slow_query(engine: Engine, config_dir: Path) -> None:
    if engine.dialect.slow is None:
        pytest.skip(f"the {engine.name} stand-in cannot run a slow query; test_snowflake_timeout_plumbing covers it")
    started = time.monotonic()
    with engine.warehouse(config_dir, statement_timeout=1) as wh, pytest.raises(WarehouseError, match="statement_timeout") as info:
        list(wh.stream(engine.dialect.slow, max_rows=10))
    assert time.monotonic() - started < TIMEOUT_DEADLINE
    assert info.value.exit_code == 3
    assert "raise statement_timeout" in str(info.value)


def test_sql_syntax_error_names_the_line(engine: Engine, config_dir: Path) -> None:
    with engine.warehouse(config_dir) as wh, pytest.raises(WarehouseError) as info:
        list(wh.stream(SYNTAX_ERROR, max_rows=10))
    message = str(info.value).lower()
    assert "line 2" in message, message
    assert "fix the trait's sql" in message
    assert info.value.exit_code == 3


def test_missing_table_is_a_warehouse_error(engine: Engine, config_dir: Path) -> None:
    with engine.warehouse(config_dir) as wh, pytest.raises(WarehouseError) as info:
        list(wh.stream(f"select n as user_id from {engine.conf}.no_such_table", max_rows=10))
    assert "no_such_table" in str(info.value).lower()
    assert info.value.hint


def test_permission_denied_says_what_to_grant(engine: Engine, config_dir: Path) -> None:
    if engine.denied is None:
        pytest.skip(f"{engine.name} has no users or grants to deny")
    sql, hint = engine.denied
    with engine.warehouse(config_dir) as wh, pytest.raises(WarehouseError) as info:
        list(wh.stream(sql, max_rows=10))
    assert hint in str(info.value), str(info.value)
    assert info.value.exit_code == 3


# -- a whole run through the pipeline, with a file destination -----------------------------------------

def _project(engine: Engine, root: Path, sql: str) -> Any:
    trait = {"kind": "user", "source": "wh", "sql": sql, "destinations": ["out"], "schedule": "manual"}
    (root / "traits.yml").write_text(
        f"sources:\n  wh: {engine.source_yaml()}\n"
        "destinations:\n  out: {type: file, path: out/calls.jsonl}\n"
        f"traits:\n  people: {json.dumps(trait)}\n"
    )
    config = load_config(root)
    return config, open_state(config)


def _calls(root: Path) -> list[dict[str, Any]]:
    path = root / "out" / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_run_rerun_change_and_delete(engine: Engine, config_dir: Path) -> None:
    table = f"{engine.conf}.people_{uuid.uuid4().hex[:8]}"
    engine.admin(f"create table {table} (id varchar(20), name varchar(50), score integer)")
    engine.admin(f"insert into {table} values ('u1', 'Ann', 1), ('u2', 'Bob', 2), ('u3', 'Cy', 3), ('u4', 'Di', 4)")
    config, state = _project(engine, config_dir, f"select id as user_id, name, score from {table}")

    first = run_trait(config, state, "people", RunOptions())
    assert (first.exit_code, first.record.status, first.record.added, first.record.sent) == (0, "ok", 4, 4), first.record.error
    calls = _calls(config_dir)
    assert {c["userId"]: c["traits"] for c in calls} == {
        "u1": {"name": "Ann", "score": 1}, "u2": {"name": "Bob", "score": 2},
        "u3": {"name": "Cy", "score": 3}, "u4": {"name": "Di", "score": 4},
    }
    assert {c["type"] for c in calls} == {"identify"}

    again = run_trait(config, state, "people", RunOptions())
    assert (again.exit_code, again.record.sent, again.record.unchanged) == (0, 0, 4)
    assert len(_calls(config_dir)) == 4

    engine.admin(f"update {table} set score = 20 where id = 'u2'")
    changed = run_trait(config, state, "people", RunOptions())
    assert (changed.exit_code, changed.record.changed, changed.record.sent) == (0, 1, 1)
    assert _calls(config_dir)[-1]["userId"] == "u2"
    assert _calls(config_dir)[-1]["traits"] == {"name": "Bob", "score": 20}

    engine.admin(f"delete from {table} where id = 'u3'")
    deleted = run_trait(config, state, "people", RunOptions())
    assert (deleted.exit_code, deleted.record.exited, deleted.record.sent) == (0, 1, 1)
    assert _calls(config_dir)[-1]["userId"] == "u3"
    assert _calls(config_dir)[-1]["traits"] == {"name": None, "score": None}


def _guarded_rows(engine: Engine, config_dir: Path) -> int:
    with engine.warehouse(config_dir) as wh:
        batches = list(wh.stream(f"select count(*) as n from {engine.conf}.guarded", max_rows=1))
    return int(batches[0].column(0)[0].as_py())


def test_trait_sql_cannot_write(engine: Engine, config_dir: Path) -> None:
    if engine.no_write_test:
        pytest.skip(f"{engine.name}: {engine.no_write_test}")
    assert _guarded_rows(engine, config_dir) == 3
    config, state = _project(engine, config_dir, f"delete from {engine.conf}.guarded")
    result = run_trait(config, state, "people", RunOptions())
    assert result.exit_code == 3
    assert result.record.status == "failed"
    # a write hidden in a function call gets past the select wrapper: the read-only session stops it
    with engine.warehouse(config_dir) as wh, pytest.raises(WarehouseError, match="read-only") as info:
        list(wh.stream(f"select 'u1' as user_id, {engine.conf}.purge() as n", max_rows=10))
    assert info.value.exit_code == 3
    assert _guarded_rows(engine, config_dir) == 3
    assert _calls(config_dir) == []
