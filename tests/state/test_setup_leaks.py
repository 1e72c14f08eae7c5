"""A run whose setup fails half-way (a bad secret on its second destination) closes what it had opened."""

from __future__ import annotations

import gc
import json
import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.conftest import PG_DSN, require_postgres
from traits.config import load_config
from traits.pipeline.run import RunOptions, run_trait
from traits.state.postgres import PostgresStateStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PostgresStateStore]:
    require_postgres()
    schema = "leak_" + uuid.uuid4().hex[:10]
    opened = PostgresStateStore(f"{PG_DSN}?schema={schema}", work_dir=tmp_path / "work")
    yield opened
    opened.close()
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'drop schema "{schema}" cascade')  # type: ignore[arg-type]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_bad_second_destination_leaks_no_connection(tmp_path: Path, store: PostgresStateStore) -> None:
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    con.execute("create table users as select 'u' || g as user_id, g as n from range(10) t(g)")
    con.close()
    (tmp_path / "traits.yml").write_text(json.dumps({
        "sources": {"wh": {"type": "duckdb", "path": "wh.duckdb"}},
        "destinations": {"a_file": {"type": "file", "path": "out.jsonl"},
                         "b_hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "whsec_not*base64!"}},
        "traits": {"t": {"kind": "user", "source": "wh", "sql": "select user_id, n from users", "destinations": ["a_file", "b_hook"]}},
    }))
    config = load_config(tmp_path)
    first = run_trait(config, store, "t", RunOptions(owner="test"))
    assert first.record.status == "interrupted" or first.exit_code != 0
    before = _open_fds()
    with warnings.catch_warnings(record=True) as caught:
        # a connection dropped without being closed warns when it is collected
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(5):
            result = run_trait(config, store, "t", RunOptions(owner="test"))
            assert "whsec_" in (result.record.error or ""), result.record.error
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []
    assert _open_fds() <= before, "a connection (or file) was left open by each failed setup"
