"""The engines the conformance suite runs on, each with its source config, an admin and its SQL.

Every engine is the real driver and the real warehouse module; only the server is a stand-in
where the real one cannot run here: Redshift is a wire proxy in front of the local Postgres,
Snowflake is fakesnow's HTTP server, BigQuery is a fake of its REST API over DuckDB.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from traits.config.models import SourceConfig
from traits.warehouses import Warehouse, open_warehouse

PG_ADMIN = os.environ.get("TRAITS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: one database per test session, so two sessions on one server (CI beside a developer's run) never share it
PG_DATABASE = f"traits_conformance_{os.getpid()}"
READER = "traits_reader"
READER_PASSWORD = "reader-pw"  # a throwaway local test role


@dataclass
class Dialect:
    text: str = "varchar"
    #: one row holding every type of the mapping table, with the values of ``EXPECTED_TYPES``
    types: str = ""
    #: a query that runs for far longer than a second; None: the stand-in cannot be slow
    slow: str | None = None
    #: the schema (MySQL: database) holding the readable test tables
    conf: str = "conf"

    def numbers(self) -> str:
        user_id = self.concat("'u'", f"cast(n as {self.text})")
        return f"select {user_id} as user_id, n from {self.conf}.numbers"

    def concat(self, a: str, b: str) -> str:
        return f"concat({a}, {b})" if self.text == "char" else f"{a} || {b}"


@dataclass
class Engine:
    name: str
    source: dict[str, Any]
    admin: Callable[[str], None]
    dialect: Dialect
    #: a query the configured user may not run, and what the hint must say; None: no users here
    denied: tuple[str, str] | None = None
    #: why the write test does not apply; None: the session is read-only and the test runs
    no_write_test: str | None = "it has no read-only session: the role's grants keep it read-only (README)"
    #: the stand-in's own state, for tests that check what the driver sent it
    backend: Any = None

    @property
    def conf(self) -> str:
        return self.dialect.conf

    def model(self, **overrides: Any) -> Any:
        return TypeAdapter(SourceConfig).validate_python({**self.source, **overrides})

    def warehouse(self, config_dir: Path, **overrides: Any) -> Warehouse:
        return open_warehouse("wh", self.model(**overrides), config_dir)

    def source_yaml(self) -> str:
        return json.dumps(self.source)  # JSON is YAML


# -- the same values, written in each engine's SQL -------------------------------------------------

EXPECTED_TYPES: dict[str, Any] = {
    "arr": [1, 2],
    "big": 9223372036854775807,
    "bo": True,
    "by": "q80=",
    "d": 12345.67,
    "dt": "2024-02-29",
    "f": 1.5,
    "f_inf": None,
    "f_nan": None,
    "j": {"a": [1, 2]},
    "neg": -42,
    "rec": {"x": 1, "y": "z"},
    "s": "héllo",
    "t": "12:34:56",
    "ts_ntz": "2024-01-01T12:00:00.000Z",
    "ts_tz": "2024-01-01T10:00:00.000Z",
}

DUCKDB_TYPES = """select 'u1' as user_id, [1, 2] as arr, cast(9223372036854775807 as bigint) as big, true as bo,
  from_hex('ABCD') as "by", cast(12345.67 as decimal(10, 2)) as d, date '2024-02-29' as dt, cast(1.5 as double) as f,
  cast('inf' as double) as f_inf, cast('nan' as double) as f_nan, cast('{"a": [1, 2]}' as json) as j, -42 as neg,
  {'x': 1, 'y': 'z'} as rec, 'héllo' as s, time '12:34:56' as t, timestamp '2024-01-01 12:00:00' as ts_ntz,
  timestamptz '2024-01-01 12:00:00+02' as ts_tz"""

POSTGRES_TYPES = """select 'u1' as user_id, array[1, 2] as arr, 9223372036854775807::bigint as big, true as bo,
  '\\xabcd'::bytea as "by", 12345.67::numeric(10, 2) as d, date '2024-02-29' as dt, 1.5::float8 as f,
  'Infinity'::float8 as f_inf, 'NaN'::float8 as f_nan, '{"a": [1, 2]}'::jsonb as j, -42 as neg,
  '{"x": 1, "y": "z"}'::json as rec, 'héllo' as s, time '12:34:56' as t, timestamp '2024-01-01 12:00:00' as ts_ntz,
  timestamptz '2024-01-01 12:00:00+02' as ts_tz"""

# the Redshift stand-in is Postgres behind a proxy: SUPER and json_parse are not there, so json
# stands in for SUPER (both arrive as JSON text; pg_rows maps OID 4000 the same way as 114)
REDSHIFT_TYPES = POSTGRES_TYPES.replace("array[1, 2]", "'[1, 2]'::json")

SNOWFLAKE_TYPES = """select 'u1' as user_id, parse_json('[1, 2]') as arr, 9223372036854775807 as big, true as bo,
  to_binary('ABCD', 'HEX') as by, 12345.67::number(10, 2) as d, '2024-02-29'::date as dt, 1.5::float as f,
  'inf'::float as f_inf, 'NaN'::float as f_nan, parse_json('{"a": [1, 2]}') as j, -42 as neg,
  object_construct('x', 1, 'y', 'z') as rec, 'héllo' as s, '12:34:56'::time as t,
  '2024-01-01 12:00:00'::timestamp_ntz as ts_ntz, '2024-01-01 12:00:00 +02:00'::timestamp_tz as ts_tz"""

BIGQUERY_TYPES = """select 'u1' as user_id, [1, 2] as arr, 9223372036854775807 as big, true as bo,
  from_hex('abcd') as `by`, numeric '12345.67' as d, date '2024-02-29' as dt, 1.5 as f,
  cast('inf' as float64) as f_inf, cast('nan' as float64) as f_nan, parse_json('{"a": [1, 2]}') as j, -42 as neg,
  struct(1 as x, 'z' as y) as rec, 'héllo' as s, time '12:34:56' as t, datetime '2024-01-01 12:00:00' as ts_ntz,
  timestamp '2024-01-01 12:00:00+02:00' as ts_tz"""

SYNTAX_ERROR = "select 1 as user_id,\n  count(( as n from conf.numbers"


def require_module(name: str, install: str) -> Any:
    """Import ``name``; without it skip, except under CI=true, where a missing stand-in is a failure."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        if IN_CI:
            pytest.fail(f"CI needs {name} for the conformance suite: {install}")
        pytest.skip(f"{name} is not installed: {install}")


MARIADB_ADMIN = os.environ.get("TRAITS_TEST_MARIADB", "mysql+pymysql://root:@127.0.0.1:3306/")


def require_mariadb() -> None:
    """Skip without MariaDB, except under CI=true, where its absence is a failure."""
    try:
        import pymysql
        from sqlalchemy import make_url

        url = make_url(MARIADB_ADMIN)
        pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password or "", connect_timeout=3).close()
    except Exception as e:  # ImportError or any connection failure
        why = f"MariaDB at {MARIADB_ADMIN} is not reachable: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
        if IN_CI:
            pytest.fail(f"CI needs MariaDB for the sqlalchemy engine: {why}")
        pytest.skip(why)


def mariadb_types(conf: str) -> str:
    """Every type of the mapping table in MariaDB: no arrays or structs (JSON stands in), no
    NaN or Infinity (null, what they are sent as anyway), BOOLEAN and TIMESTAMP from a table."""
    return f"""select 'u1' as user_id, json_array(1, 2) as arr, cast(9223372036854775807 as signed) as big, bo,
  unhex('ABCD') as `by`, cast(12345.67 as decimal(10, 2)) as d, date '2024-02-29' as dt, cast(1.5 as double) as f,
  cast(null as double) as f_inf, cast(null as double) as f_nan, json_object('a', json_array(1, 2)) as j, -42 as neg,
  json_object('x', 1, 'y', 'z') as rec, 'héllo' as s, time '12:34:56' as t, timestamp '2024-01-01 12:00:00' as ts_ntz,
  ts_tz from {conf}.typed"""


def require_postgres() -> None:
    """Skip without Postgres, except under CI=true, where its absence is a failure."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as e:  # ImportError or any connection failure
        why = f"PostgreSQL at {PG_ADMIN} is not reachable: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
        if IN_CI:
            pytest.fail(f"CI needs PostgreSQL for the postgres and redshift engines: {why}")
        pytest.skip(why)
