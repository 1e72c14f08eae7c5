"""Fixtures: each engine of the conformance suite, its stand-in started here and torn down after.

Every engine gets the same data: ``conf.numbers`` (n = 1‥2500), readable by the configured
user, and ``restricted.secrets``, which the configured user may not read (where the engine has
users). Postgres and the Redshift stand-in use the database ``traits_conformance`` on the local
server and the role ``traits_reader``, granted USAGE on ``conf`` and SELECT on its tables only.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from .engines import (
    BIGQUERY_TYPES,
    DUCKDB_TYPES,
    MARIADB_ADMIN,
    PG_ADMIN,
    PG_DATABASE,
    POSTGRES_TYPES,
    READER,
    READER_PASSWORD,
    REDSHIFT_TYPES,
    SNOWFLAKE_TYPES,
    Dialect,
    Engine,
    mariadb_types,
    require_mariadb,
    require_module,
    require_postgres,
)

ENGINES = ["duckdb", "postgres", "postgres_psycopg", "redshift", "snowflake", "bigquery", "mariadb", "sqlalchemy_duckdb",
           "sqlalchemy_postgres"]

#: run on the server's admin database: the reader role is shared by every session on the server
#: (each has a database of its own), and one session at a time creates it and sets its password
#: (two at once: "tuple concurrently updated"). An advisory lock is held in one database only,
#: so it is taken in the one database every session shares.
PG_ROLE_SETUP = f"""
select pg_advisory_xact_lock(hashtext('sql-traits tests: {READER}'));
do $$ begin
  if not exists (select from pg_roles where rolname = '{READER}') then create role {READER} login; end if;
end $$;
set password_encryption = 'md5';
alter role {READER} login password '{READER_PASSWORD}';
"""
PG_SETUP = f"""
drop schema if exists conf cascade;
drop schema if exists restricted cascade;
create schema conf;
create schema restricted;
create table conf.numbers as select g as n from generate_series(1, 2500) g;
create table conf.guarded as select g as n from generate_series(1, 3) g;
create function conf.purge() returns int language sql as 'delete from conf.guarded; select 1';
create table restricted.secrets as select 'u1' as user_id, 1 as n;
grant usage on schema conf to {READER};
grant select on all tables in schema conf to {READER};
grant delete on conf.guarded to {READER};
alter default privileges in schema conf grant select on tables to {READER};
"""


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Engine:
    fixture: Engine = request.getfixturevalue(f"{request.param}_engine")
    return fixture


# -- DuckDB ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def duckdb_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    import duckdb

    path = tmp_path_factory.mktemp("duckdb") / "warehouse.duckdb"

    def admin(sql: str) -> None:
        con = duckdb.connect(str(path))
        try:
            con.execute(sql)
        finally:
            con.close()

    admin("create schema conf; create table conf.numbers as select range as n from range(1, 2501)")
    dialect = Dialect(types=DUCKDB_TYPES, slow="select 'x' as user_id, count(*) as n from range(100000) a, range(100000) b "
                      "where (a.range * b.range) % 7 = 3")
    no_write = "the DuckDB file is opened read_only, and DuckDB has no functions that write"
    return Engine("duckdb", {"type": "duckdb", "path": str(path), "batch_rows": 1000}, admin, dialect, no_write_test=no_write)


# -- Postgres and the Redshift stand-in -------------------------------------------------------------

@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The admin DSN of the conformance database, set up afresh for this session."""
    require_postgres()
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (PG_DATABASE,)).fetchone()
        if not exists:
            conn.execute(f"create database {PG_DATABASE}")
        conn.execute(PG_ROLE_SETUP)
    dsn = make_conninfo(**{**conninfo_to_dict(PG_ADMIN), "dbname": PG_DATABASE})
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(PG_SETUP)
    yield dsn
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"drop database if exists {PG_DATABASE} with (force)")


def _pg_admin(dsn: str) -> Any:
    def admin(sql: str) -> None:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]
            conn.execute(f"grant select on all tables in schema conf to {READER}")

    return admin


PG_DENIED = ("select user_id, n from restricted.secrets", f"GRANT USAGE ON SCHEMA restricted TO {READER}")


def _postgres(dsn: str, driver: str) -> Engine:
    source = {"type": "postgres", "host": "127.0.0.1", "port": 5432, "database": PG_DATABASE, "user": READER,
              "password": READER_PASSWORD, "driver": driver, "batch_rows": 1000}
    dialect = Dialect(types=POSTGRES_TYPES, slow="select 'x' as user_id, pg_sleep(30) as n")
    return Engine("postgres", source, _pg_admin(dsn), dialect, denied=PG_DENIED, no_write_test=None)


@pytest.fixture(scope="session")
def postgres_engine(pg_database: str) -> Engine:
    return _postgres(pg_database, "adbc")


@pytest.fixture(scope="session")
def postgres_psycopg_engine(pg_database: str) -> Engine:
    return _postgres(pg_database, "psycopg")


#: Redshift built-ins the row hash uses that the Postgres behind the Redshift stand-in lacks, with
#: Redshift's meaning: ``strtol`` (hex text → bigint), ``to_hex`` of bytes, ``json_serialize`` of
#: SUPER (json stands in for it)
REDSHIFT_BUILTINS = [
    "create or replace function public.strtol(t text, base int) returns bigint language sql immutable as "
    "$$ select ('x' || lpad(t, 16, '0'))::bit(64)::bigint $$",
    "create or replace function public.to_hex(b bytea) returns text language sql immutable as $$ select encode(b, 'hex') $$",
    "create or replace function public.json_serialize(j json) returns text language sql immutable as $$ select j::text $$",
    "create or replace function public.json_serialize(j jsonb) returns text language sql immutable as $$ select j::text $$",
]


@pytest.fixture(scope="session")
def bookkeeping_grants(pg_database: str) -> str:
    """The bookkeeping schema a user would create for the reader role: owned by it, nothing else."""
    import psycopg

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"create schema if not exists sql_traits authorization {READER}")
        for statement in REDSHIFT_BUILTINS:
            conn.execute(statement)  # type: ignore[arg-type]
    return pg_database


@pytest.fixture(scope="session")
def redshift_engine(pg_database: str) -> Iterator[Engine]:
    require_module("redshift_connector", "pip install 'sql-traits[redshift]'")
    from standins.redshift_proxy import redshift_proxy

    with redshift_proxy() as proxy:
        source = {"type": "redshift", "host": "127.0.0.1", "port": proxy.port, "database": PG_DATABASE, "user": READER,
                  "password": READER_PASSWORD, "ssl": False, "batch_rows": 1000}
        dialect = Dialect(types=REDSHIFT_TYPES, slow="select 'x' as user_id, pg_sleep(30) as n")
        yield Engine("redshift", source, _pg_admin(pg_database), dialect, denied=PG_DENIED, no_write_test=None)


# -- Snowflake (fakesnow's server) --------------------------------------------------------------------

_WRITE = re.compile(r"^\s*(begin|insert|update|delete|merge|truncate)\b", re.I)


@contextmanager
def _detached_transactions_released() -> Iterator[None]:
    """fakesnow's server, with a transaction left open by a client that died released as
    Snowflake releases it, not held for good.

    Each server session is a DuckDB connection, which refuses at once to change a row another
    open transaction changed (the server answers 500, and the connector retries for minutes). In
    Snowflake a disconnected session's transaction is *detached*: it holds its locks until it
    blocks another transaction and has been idle for 5 minutes, then it is rolled back. Here a
    statement that writes rolls back at once the open transactions of the sessions not running
    a statement (the server serves one client at a time)."""
    import importlib

    import duckdb
    from fakesnow.cursor import FakeSnowflakeCursor

    sessions = importlib.import_module("fakesnow.server").sessions  # (``fakesnow.server`` is also a function)

    original = FakeSnowflakeCursor.execute
    busy: set[int] = set()
    lock = threading.Lock()

    def execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        conn = self._conn
        with lock:
            busy.add(id(conn))
            idle = [c for c in sessions.values() if c is not conn and id(c) not in busy]
        try:
            if kwargs.get("server") and _WRITE.match(command):
                for other in idle:
                    with suppress(duckdb.TransactionException):  # (no transaction open)
                        other._duck_conn.rollback()
                    other._in_transaction = False
            return original(self, command, *args, **kwargs)
        finally:
            with lock:
                busy.discard(id(conn))

    FakeSnowflakeCursor.execute = execute  # type: ignore[method-assign]
    try:
        yield
    finally:
        FakeSnowflakeCursor.execute = original  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def snowflake_engine() -> Iterator[Engine]:
    require_module("snowflake.connector", "pip install 'sql-traits[snowflake]'")
    require_module("uvicorn", "pip install 'fakesnow[server]'")
    fakesnow = require_module("fakesnow", "pip install 'fakesnow[server]'")
    import snowflake.connector

    logging.getLogger("fakesnow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
    with fakesnow.server() as kwargs, _detached_transactions_released():
        conn = snowflake.connector.connect(**kwargs)
        cursor = conn.cursor()

        def admin(sql: str) -> None:
            for statement in filter(str.strip, sql.split(";")):
                cursor.execute(statement)

        admin("create database if not exists confdb; use database confdb; create schema if not exists conf; "
              "create or replace table conf.numbers as select seq4() + 1 as n from table(generator(rowcount => 2500))")
        source = {"type": "snowflake", "account": kwargs["account"], "user": kwargs["user"], "password": kwargs["password"],
                  "host": kwargs["host"], "port": kwargs["port"], "protocol": "http", "database": "CONFDB", "schema": "CONF",
                  "role": "TRAITS_READER", "batch_rows": 1000}
        # fakesnow has no grants: Snowflake answers a table the role may not read exactly as a
        # missing one (002003 "does not exist or not authorized"), which is what this checks
        denied = ("select user_id, n from restricted.secrets", "GRANT SELECT ON ALL TABLES IN SCHEMA")
        try:
            yield Engine("snowflake", source, admin, Dialect(types=SNOWFLAKE_TYPES), denied=denied)
        finally:
            conn.close()


# -- BigQuery (a fake of the REST API over DuckDB) -----------------------------------------------------

@pytest.fixture(scope="session")
def bigquery_engine() -> Iterator[Engine]:
    require_module("google.cloud.bigquery", "pip install 'sql-traits[bigquery]'")
    require_module("sqlglot", "pip install sqlglot (the BigQuery stand-in translates SQL with it)")
    import duckdb
    from standins.bigquery_fake import fake_bigquery

    con = duckdb.connect(":memory:")

    def admin(sql: str) -> None:
        cursor = con.cursor()
        try:
            cursor.execute(sql)
        finally:
            cursor.close()

    admin("create schema conf; create table conf.numbers as select range as n from range(1, 2501); "
          "create schema restricted; create table restricted.secrets as select 'u1' as user_id, 1 as n")
    with fake_bigquery(con, denied={"restricted"}) as (endpoint, fake):
        source = {"type": "bigquery", "project": "conformance", "api_endpoint": endpoint, "batch_rows": 1000}
        dialect = Dialect(text="string", types=BIGQUERY_TYPES,
                          slow="select count(*) as n from unnest(generate_array(1, 100000)) a "
                          "cross join unnest(generate_array(1, 100000)) b where mod(a * b, 7) = 3")
        denied = ("select user_id, n from restricted.secrets", "BigQuery Data Viewer")
        yield Engine("bigquery", source, admin, dialect, denied=denied, backend=fake)
    con.close()


# -- MariaDB through the SQLAlchemy source -------------------------------------------------------------

@pytest.fixture(scope="session")
def mariadb_engine() -> Iterator[Engine]:
    """A database pair and a user made for this session (MySQL's schemas are databases), dropped after."""
    require_mariadb()
    import pymysql
    from sqlalchemy import make_url

    tag = uuid.uuid4().hex[:8]
    conf, restricted, user, password = f"tconf_{tag}", f"trestricted_{tag}", f"traits_reader_{tag}", f"pw-{tag}"
    url = make_url(MARIADB_ADMIN)
    root = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password or "", autocommit=True)

    def admin(sql: str) -> None:
        with root.cursor() as cursor:
            for statement in filter(str.strip, sql.split(";")):
                cursor.execute(statement)

    admin(f"""create database {conf}; create database {restricted};
        create table {conf}.numbers (n integer primary key); insert into {conf}.numbers select seq from {conf}.seq_1_to_2500;
        create table {conf}.guarded (n integer); insert into {conf}.guarded values (1), (2), (3);
        create table {conf}.typed (bo boolean, ts_tz timestamp null);
        set time_zone = '+02:00'; insert into {conf}.typed values (true, '2024-01-01 12:00:00'); set time_zone = '+00:00';
        create table {restricted}.secrets as select 'u1' as user_id, 1 as n;
        create user '{user}'@'%' identified by '{password}';
        grant select on {conf}.* to '{user}'@'%'; grant delete on {conf}.guarded to '{user}'@'%'""")
    with root.cursor() as cursor:  # a function's body holds semicolons: one statement of its own
        cursor.execute(f"create function {conf}.purge() returns int modifies sql data begin delete from {conf}.guarded; return 1; end")
    admin(f"grant execute on function {conf}.purge to '{user}'@'%'")
    source = {"type": "sqlalchemy", "url": f"mysql+pymysql://{user}:{password}@{url.host}:{url.port or 3306}/{conf}",
              "batch_rows": 1000, "json_columns": ["arr", "j", "rec"]}
    dialect = Dialect(text="char", types=mariadb_types(conf), slow="select 'x' as user_id, sleep(30) as n", conf=conf)
    denied = (f"select user_id, n from {restricted}.secrets", f"GRANT SELECT ON {restricted}.secrets TO '{user}'@'%'")
    try:
        yield Engine("mariadb", source, admin, dialect, denied=denied, no_write_test=None, backend={"user": user, "conf": conf})
    finally:
        admin(f"drop database if exists {conf}; drop database if exists {restricted}; drop user if exists '{user}'@'%'")
        root.close()


# -- DuckDB through the SQLAlchemy source (duckdb-engine): a second real dialect -------------------------

@pytest.fixture(scope="session")
def sqlalchemy_duckdb_engine(duckdb_engine: Engine) -> Engine:
    require_module("duckdb_engine", "pip install duckdb-engine")
    path = duckdb_engine.source["path"]
    source = {"type": "sqlalchemy", "url": f"duckdb:///{path}", "batch_rows": 1000}
    no_write = "the file is opened read_only (connect_args), and DuckDB has no functions that write"
    return Engine("sqlalchemy_duckdb", source, duckdb_engine.admin, duckdb_engine.dialect, no_write_test=no_write)


# -- Postgres through the SQLAlchemy source (psycopg): the Postgres-compatible family -------------------

@pytest.fixture(scope="session")
def sqlalchemy_postgres_engine(pg_database: str) -> Engine:
    require_module("sqlalchemy", "pip install 'sql-traits[sqlalchemy]'")
    url = f"postgresql+psycopg://{READER}:{READER_PASSWORD}@127.0.0.1:5432/{PG_DATABASE}"
    dialect = Dialect(types=POSTGRES_TYPES, slow="select 'x' as user_id, pg_sleep(30) as n")
    return Engine("sqlalchemy_postgres", {"type": "sqlalchemy", "url": url, "batch_rows": 1000}, _pg_admin(pg_database), dialect,
                  denied=PG_DENIED, no_write_test=None)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path
