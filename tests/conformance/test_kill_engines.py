"""Warehouse mode killed with SIGKILL at random points loses nothing on Redshift, Snowflake and BigQuery.

The rounds of ``tests.sigkill`` (those of ``tests/core/test_kill.py``) on the conformance
suite's stand-ins, with ``diff: warehouse``: every run is a ``traits run`` subprocess that
reaches the stand-in over 127.0.0.1 and is killed at a random point (its per-run tables, an
unfinished fold, a session or transaction left open), and a final run must still end with the
table's values at the destination and nothing left over in the bookkeeping schema.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Project
from tests.sigkill import sigkill_rounds
from traits.bookkeeping.sessions import open_session
from traits.warehouses import open_warehouse

from .engines import READER, Engine

ROWS = 3_000
NEW = 150  # rows that arrive in each round


class EngineProject(Project):
    """A project whose source is a conformance engine in warehouse mode, with its own bookkeeping schema."""

    def __init__(self, root: Path, engine: Engine, schema: str) -> None:
        super().__init__(root, engine.name, diff="warehouse")
        self.engine = engine
        self.schema = schema

    @property
    def bookkeeping_schema(self) -> str:
        return self.schema

    def source_yaml(self) -> str:
        return f"  wh: {json.dumps({**self.engine.source, 'diff': 'warehouse', 'bookkeeping_schema': self.schema})}\n"

    def sql(self, statement: str) -> None:
        self.engine.admin(statement)

    def model(self) -> Any:
        return self.engine.model(diff="warehouse", bookkeeping_schema=self.schema)


@pytest.fixture(params=["redshift", "snowflake", "bigquery"])
def kill_engine(request: pytest.FixtureRequest) -> Engine:
    if request.param == "redshift":
        request.getfixturevalue("bookkeeping_grants")
    engine: Engine = request.getfixturevalue(f"{request.param}_engine")
    return engine


@pytest.fixture
def kill_project(kill_engine: Engine, tmp_path: Path) -> Iterator[EngineProject]:
    """The project, on a bookkeeping schema of its own (the Redshift stand-in's made for the reader
    role, as a user would; the others' made by the first run), dropped after."""
    e = kill_engine
    schema = f"kill_{uuid.uuid4().hex[:8]}"
    if e.name == "redshift":
        e.admin(f"create schema {schema} authorization {READER}")
    yield EngineProject(tmp_path, e, schema)
    e.admin(f"drop schema if exists {schema} cascade")


#: the numbers 0 … ROWS - 1 as ``g``, in the SQL each engine's admin speaks (the BigQuery stand-in's is DuckDB's)
SERIES = {
    "redshift": f"select g from generate_series(0, {ROWS - 1}) g",
    "snowflake": f"select seq4() as g from table(generator(rowcount => {ROWS}))",
    "bigquery": f"select range as g from range({ROWS})",
}


@pytest.mark.slow
def test_sigkill_at_random_points_in_warehouse_mode(kill_project: EngineProject) -> None:
    project, e = kill_project, kill_project.engine
    table = f"{e.conf}.kill_{uuid.uuid4().hex[:8]}"
    e.admin(f"create table {table} as select 'u' || g as id, g, mod(g, 13) as n, 'v0' as label from ({SERIES[e.name]}) s")

    def change(round_: int) -> None:
        # a day of change: some rows change, some leave, some arrive
        e.admin(f"update {table} set label = 'v{round_ + 1}' where mod(g + {round_}, 4) = 0")
        e.admin(f"delete from {table} where mod(g + {7 * round_}, 50) = 0")
        first = ROWS + round_ * NEW
        e.admin(f"insert into {table} (id, g, n, label) values " + ", ".join(f"('n{round_}_{g}', {g}, {g % 13}, 'new')" for g in range(first, first + NEW)))

    def expected() -> dict[str, dict[str, Any]]:
        import pyarrow as pa

        with open_warehouse("wh", project.model(), project.root) as wh:
            rows = pa.Table.from_batches(list(wh.stream(f"select id, n, label from {table}", max_rows=10 * ROWS))).to_pylist()
        # (Snowflake names the columns ID, N, LABEL)
        return {str(r["id"]): {"label": r["label"], "n": int(r["n"])} for r in ({k.lower(): v for k, v in row.items()} for row in rows)}

    def run_tables() -> list[str]:
        model = project.model()
        with open_warehouse("wh", model, project.root) as wh, open_session("wh", model, wh, trait="t", config_dir=project.root) as s:
            return s.tables("run_")

    try:
        sigkill_rounds(project, sql=f"select id as user_id, n, label from {table}", change=change, expected=expected,
                       run_tables=run_tables, batch_size=20, most_calls=800, anywhere=3.0)
    finally:
        e.admin(f"drop table if exists {table}")


def test_bigquery_stand_in_lets_a_killed_runs_transaction_go(bigquery_engine: Engine) -> None:
    """A session left in a transaction by a killed client blocks no one, as in BigQuery: the next
    write rolls it back (DuckDB underneath would refuse the row it changed for good)."""
    e, fake = bigquery_engine, bigquery_engine.backend
    table = f"{e.conf}.kill_{uuid.uuid4().hex[:8]}"
    e.admin(f"create table {table} (k varchar, v integer); insert into {table} values ('a', 1), ('b', 2)")

    def job(sql: str, session: str | None = None) -> Any:
        query: dict[str, Any] = {"query": sql}
        if session is None:
            query["createSession"] = True
        else:
            query["connectionProperties"] = [{"key": "session_id", "value": session}]
        return fake.run("conformance", {"configuration": {"query": query}})

    killed = job("begin transaction").session
    assert job(f"delete from {table} where k = 'a'", killed).error is None  # … and its client is gone
    later = job("begin transaction").session
    assert job(f"delete from {table} where k = 'a'", later).error is None
    assert job("commit transaction", later).error is None
    assert job("commit transaction", killed).error == {"reason": "invalidQuery", "message": "Transaction is aborted due to concurrent update"}
    e.admin(f"insert into {table} select 'n', count(*) from {table}")
    assert job(f"select v from {table} where k = 'n'", later).table.to_pylist() == [{"v": 1}]


def test_snowflake_stand_in_releases_a_killed_runs_transaction(snowflake_engine: Engine) -> None:
    """As Snowflake rolls back a disconnected session's transaction that blocks another, the
    stand-in does (fakesnow alone keeps it, and refuses the row it changed for good)."""
    import snowflake.connector

    e = snowflake_engine
    table = f"{e.conf}.kill_{uuid.uuid4().hex[:8]}"
    e.admin(f"create table {table} (k varchar, v integer); insert into {table} values ('a', 1), ('b', 2)")
    args = {k: e.source[k] for k in ("account", "user", "password", "host", "port", "protocol", "database", "schema")}
    killed, later = snowflake.connector.connect(**args), snowflake.connector.connect(**args)
    try:
        killed.cursor().execute("begin")
        killed.cursor().execute(f"delete from {table} where k = 'a'")  # … and its client is gone
        cursor = later.cursor()
        cursor.execute("begin")
        cursor.execute(f"delete from {table} where k = 'a'")
        cursor.execute("commit")
        cursor.execute(f"select k from {table}")
        assert cursor.fetchall() == [("b",)]
    finally:
        killed.close()
        later.close()
