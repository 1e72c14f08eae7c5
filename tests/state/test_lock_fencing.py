"""The Postgres state store's lock is fenced, and a commit it refuses leaves the run resumable.

Real processes, the real local Postgres as the state store, a real local HTTP receiver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import PG_DSN, require_postgres
from tests.destinations.receiver import Received, Receiver, Reply, check_redeliveries

ROWS = 2_000
TRAIT = "plan"


@pytest.fixture
def state_schema() -> Iterator[str]:
    require_postgres()
    import psycopg

    schema = "fence_" + uuid.uuid4().hex[:10]
    yield schema
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'drop schema if exists "{schema}" cascade')  # type: ignore[arg-type]


def _project(root: Path, receiver_url: str, batch: int = 20) -> Path:
    config = root / "config"
    config.mkdir()
    con = duckdb.connect(str(config / "wh.duckdb"))
    con.execute(f"create table users as select 'u' || g as user_id, 'p' || (g % 7) as plan from range({ROWS}) t(g)")
    con.close()
    (config / "traits.yml").write_text(json.dumps({
        "sources": {"wh": {"type": "duckdb", "path": "wh.duckdb"}},
        "destinations": {"seg": {"type": "segment", "write_key": "k", "endpoint": receiver_url, "max_batch_calls": batch, "concurrency": 2,
                                 "connect_timeout": 1, "timeout": 150, "retry_backoff": 0.01, "retry_backoff_max": 0.05}},
        "traits": {TRAIT: {"kind": "user", "source": "wh", "sql": "select user_id, plan from users", "destinations": ["seg"], "schedule": "manual"}},
    }))
    return config


def _env(state: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "TRAITS_STATE": state, "TRAITS_LOCK_PING": "0.2"}


def _start(config: Path, state: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "traits.cli.main", "run", TRAIT, "--json", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(state),
    )


def _run(config: Path, state: str) -> tuple[int, dict[str, Any], str]:
    process = _start(config, state)
    out, err = process.communicate(timeout=180)
    return process.returncode, json.loads(out), err


def _sql(statement: str, *args: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        cur = conn.execute(statement, args or None)  # type: ignore[arg-type]
        return list(cur.fetchall()) if cur.description else []


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _expected() -> dict[str, dict[str, Any]]:
    return {f"u{g}": {"plan": f"p{g % 7}"} for g in range(ROWS)}


def test_a_run_whose_lock_session_dies_stops_and_never_commits(tmp_path: Path, state_schema: str) -> None:
    gate = threading.Event()
    gate.set()

    def answer(_r: Received) -> Reply:
        gate.wait(120)  # the collector answers only when the test lets it
        return Reply()

    with Receiver(answer) as receiver:
        config = _project(tmp_path, receiver.url)
        state = f"{PG_DSN}?schema={state_schema}"
        first = _start(config, state)
        _wait(lambda: len(receiver.snapshot()) >= 5 or first.poll() is not None, 60, "the first run to deliver")
        assert first.poll() is None, first.communicate()
        gate.clear()
        # both of its workers wait on an answer: none is between an answer and its ack
        _wait(lambda: receiver.in_flight >= 2, 60, "both workers to wait on the collector")
        (lock_pid,) = _sql(f'select lock_pid from "{state_schema}".locks where trait = %s', TRAIT)[0]
        _sql("select pg_terminate_backend(%s)", lock_pid)
        at_kill = len(receiver.snapshot())
        # a second runner now finds the lock free, but the first is alive: it must not take over
        code, out, err = _run(config, state)
        assert code == 1, (out, err)
        assert "still running" in err
        gate.set()
        out1, err1 = first.communicate(timeout=120)
        assert first.returncode == 5, (out1, err1)
        assert "lock" in err1
        after = len(receiver.snapshot()) - at_kill
        # it stopped within a bounded number of batches (two workers: what was in flight, and one more each)
        assert after <= 2 * 2 + 2, after
        assert len(receiver.snapshot()) * 20 < ROWS, "the first run stopped before sending everything"
        # it committed nothing: no snapshot, its acks still waiting to be folded by the resume
        assert _sql(f'select count(*) from "{state_schema}".snapshot_rows')[0][0] == 0
        first_run_id = receiver.accepted_calls()[0]["context"]["traits_engine"]["run_id"]
        # the next runner resumes it, under the same run_id, and finishes it
        code, out, err = _run(config, state)
        assert code == 0, err
        assert out["runs"][0]["run_id"] == first_run_id
        assert out["runs"][0]["status"] == "ok"
        assert out["runs"][0]["sent"] == ROWS
    assert receiver.profiles() == _expected()
    check_redeliveries(receiver.accepted_calls())
    history = {r["run_id"]: r for r in json.loads(subprocess.run(
        [sys.executable, "-m", "traits.cli.main", "history", "--json", "--config", str(config)],
        capture_output=True, text=True, env=_env(state), check=True).stdout)["runs"]}
    assert history[first_run_id]["status"] == "ok"
    assert _sql(f'select count(*) from "{state_schema}".acks')[0][0] == 0


def test_a_commit_the_store_refuses_is_finished_later_under_the_same_run_id(tmp_path: Path, state_schema: str) -> None:
    role = "traits_" + uuid.uuid4().hex[:8]
    _sql(f'create role "{role}" login')
    try:
        with Receiver() as receiver:
            config = _project(tmp_path, receiver.url, batch=100)
            owner_state = f"{PG_DSN}?schema={state_schema}"
            # the schema exists (made by its owner); the run's role may write everything but the snapshot
            from traits.state.postgres import PostgresStateStore

            PostgresStateStore(owner_state, work_dir=tmp_path / "w").close()
            _sql(f'grant usage on schema "{state_schema}" to "{role}"')
            _sql(f'grant select, insert, update, delete on all tables in schema "{state_schema}" to "{role}"')
            _sql(f'grant usage on all sequences in schema "{state_schema}" to "{role}"')
            _sql(f'revoke insert, update, delete on "{state_schema}".snapshot_rows, "{state_schema}".snapshots from "{role}"')
            role_state = PG_DSN.replace("postgres@", f"{role}@", 1) + f"?schema={state_schema}"
            code, out, err = _run(config, role_state)
            assert code == 5, (out, err)
            refused = out["runs"][0]
            assert refused["status"] == "interrupted"
            assert "resumes" in refused["error"]
            sent_first = {c["messageId"] for c in receiver.accepted_calls()}
            assert len(sent_first) == ROWS
            # the store is fixed: the next run finishes the same run, and sends nothing new
            _sql(f'grant insert, update, delete on "{state_schema}".snapshot_rows, "{state_schema}".snapshots to "{role}"')
            code, out, err = _run(config, role_state)
            assert code == 0, err
            assert out["runs"][0]["run_id"] == refused["run_id"]
            assert out["runs"][0]["status"] == "ok"
            assert out["runs"][0]["sent"] == ROWS
            assert out["runs"][1]["sent"] == 0
            assert {c["messageId"] for c in receiver.accepted_calls()} == sent_first
            assert receiver.profiles() == _expected()
            assert _sql(f'select count(*) from "{state_schema}".acks')[0][0] == 0
            assert _sql(f'select count(*) from "{state_schema}".snapshot_rows')[0][0] == ROWS
    finally:
        _sql(f'drop owned by "{role}"')
        _sql(f'drop role "{role}"')
