"""What one engine does that the shared suite cannot see: session settings, what is sent, drivers.

Where a stand-in cannot behave like the real server (fakesnow cannot run a slow query or refuse
a password), the test checks the plumbing honestly instead: the setting reaches the real
driver, and the real driver's error for it maps to the right message.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from traits.errors import ConfigError, WarehouseError

from .engines import READER, Engine

PG_LIKE = ["postgres", "postgres_psycopg", "redshift", "sqlalchemy_postgres"]


@pytest.fixture(params=PG_LIKE)
def pg_engine(request: pytest.FixtureRequest) -> Engine:
    fixture: Engine = request.getfixturevalue(f"{request.param}_engine")
    return fixture


def test_postgres_protocol_session_is_read_only_with_timeout_and_name(pg_engine: Engine, config_dir: Path) -> None:
    sql = ("select current_setting('transaction_read_only') as ro, current_setting('statement_timeout') as st, "
           "current_setting('application_name') as app, current_user as who")
    with pg_engine.warehouse(config_dir, statement_timeout=42) as wh:
        row = next(iter(wh.stream(sql, max_rows=1))).to_pylist()[0]
    assert row == {"ro": "on", "st": "42s", "app": "sql-traits", "who": READER}


def test_postgres_protocol_check_lists_only_readable_tables(pg_engine: Engine, config_dir: Path) -> None:
    with pg_engine.warehouse(config_dir) as wh:
        lines = wh.check()
    assert lines[0].startswith(f"connected as {READER}")
    assert "conf.numbers" in lines[1]
    assert "restricted.secrets" not in lines[1]


#: numeric literals, and the text Postgres prints for each
NUMERICS = {"1.50": "1.50", "NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity", "0.000": "0.000", "-0.0001": "-0.0001",
            "123456789012345678901234567890.123456789": "123456789012345678901234567890.123456789",
            "1E-30": "0.000000000000000000000000000001"}


@pytest.mark.parametrize("engine_name", ["postgres", "postgres_psycopg"])
def test_postgres_numerics_arrive_as_the_servers_text_with_their_marker(
    request: pytest.FixtureRequest, engine_name: str, config_dir: Path
) -> None:
    """Both drivers hand a numeric over as the text Postgres prints (ADBC's own conversion spelled
    NaN "nan" and was the slowest part of a read); a quote in a column's name survives the rewrite."""
    from traits.warehouses.arrow_types import DECIMAL_TEXT

    engine: Engine = request.getfixturevalue(f"{engine_name}_engine")
    values = ", ".join(f"('{v}')" for v in NUMERICS)
    sql = f'select x::numeric as "a""b", x as t, 2 as n from (values {values}, (null)) v(x)'
    with engine.warehouse(config_dir) as wh:
        batches = list(wh.stream(sql, max_rows=100))
    field = batches[0].schema.field('a"b')
    assert (str(field.type), field.metadata) == ("string", DECIMAL_TEXT)
    rows = [r for b in batches for r in b.to_pylist()]
    assert rows == [{'a"b': text, "t": literal, "n": 2} for literal, text in NUMERICS.items()] + [{'a"b': None, "t": None, "n": 2}]


def test_redshift_refused_connection_is_a_warehouse_error(redshift_engine: Engine, config_dir: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with redshift_engine.warehouse(config_dir, port=port, timeout=3) as wh, pytest.raises(WarehouseError) as info:
        list(wh.stream("select 1 as user_id", max_rows=1))
    assert info.value.exit_code == 3
    assert "host" in (info.value.hint or "")


def test_snowflake_timeout_plumbing(snowflake_engine: Engine, config_dir: Path) -> None:
    """fakesnow cannot run a slow query: check the session parameter and the real error's mapping."""
    from snowflake.connector.errors import ProgrammingError

    wh = snowflake_engine.warehouse(config_dir, statement_timeout=7)
    assert wh.connect_args()["session_parameters"]["STATEMENT_TIMEOUT_IN_SECONDS"] == 7  # type: ignore[attr-defined]
    assert next(iter(wh.stream("select 1 as user_id", max_rows=1))).num_rows == 1  # the real login accepts it
    error = ProgrammingError(msg="Statement reached its statement or warehouse timeout of 7 second(s) and was canceled.",
                             errno=630, sqlstate="57014")
    mapped = wh.error(error, "select 1")  # type: ignore[attr-defined]
    assert "statement_timeout (7s)" in str(mapped)


@pytest.mark.parametrize(("errno", "message", "expected"), [
    (390100, "Incorrect username or password was specified.", "refused the credentials"),
    (390144, "JWT token is invalid.", "refused the credentials"),
    (2003, "SQL compilation error: Object 'CONF.NOPE' does not exist or not authorized.", "GRANT USAGE ON SCHEMA"),
    (1003, "SQL compilation error:\nsyntax error line 3 at position 9 unexpected 'frm'.", "line 2, column 10"),
    (250001, "Could not connect to Snowflake backend after 2 attempt(s).Aborting", "cannot connect to Snowflake"),
])
def test_snowflake_error_codes(snowflake_engine: Engine, config_dir: Path, errno: int, message: str, expected: str) -> None:
    from snowflake.connector.errors import ProgrammingError

    wh = snowflake_engine.warehouse(config_dir)
    mapped = wh.error(ProgrammingError(msg=message, errno=errno), "select 1")  # type: ignore[attr-defined]
    assert expected in str(mapped)
    assert mapped.exit_code == 3


def test_snowflake_upper_case_names_are_lower_cased(snowflake_engine: Engine, config_dir: Path) -> None:
    with snowflake_engine.warehouse(config_dir) as wh:
        batch = next(iter(wh.stream('select 1 as user_id, 2 as "camelCase"', max_rows=1)))
    assert batch.schema.names == ["user_id", "camelCase"]


def test_bigquery_job_carries_timeout_cap_and_label(bigquery_engine: Engine, config_dir: Path) -> None:
    fake = bigquery_engine.backend
    with bigquery_engine.warehouse(config_dir, statement_timeout=5, maximum_bytes_billed=10**9) as wh:
        list(wh.stream("select 1 as user_id", max_rows=1))
    job = list(fake.jobs.values())[-1]
    assert int(job.configuration["jobTimeoutMs"]) == 5000
    assert int(job.configuration["query"]["maximumBytesBilled"]) == 10**9
    assert job.configuration["query"]["useLegacySql"] is False
    assert job.configuration["labels"] == {"application": "sql-traits"}


def test_bigquery_pages_by_batch_rows(bigquery_engine: Engine, config_dir: Path) -> None:
    with bigquery_engine.warehouse(config_dir) as wh:
        sizes = [b.num_rows for b in wh.stream(bigquery_engine.dialect.numbers(), max_rows=10_000)]
    assert sizes == [1000, 1000, 500]


@pytest.mark.parametrize(("kind", "module", "extra"), [
    ("redshift", "redshift_connector", "redshift"),
    ("snowflake", "snowflake.connector", "snowflake"),
    ("bigquery", "google.cloud.bigquery", "bigquery"),
])
def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str, module: str, extra: str) -> None:
    from pydantic import TypeAdapter

    from traits.config.models import SourceConfig
    from traits.warehouses import open_warehouse

    monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    sources = {
        "redshift": {"type": "redshift", "host": "127.0.0.1", "user": "u", "password": "p"},
        "snowflake": {"type": "snowflake", "account": "a", "user": "u", "password": "p"},
        "bigquery": {"type": "bigquery", "project": "p"},
    }
    wh = open_warehouse("wh", TypeAdapter(SourceConfig).validate_python(sources[kind]), tmp_path)
    with pytest.raises(ConfigError) as info:
        list(wh.stream("select 1", max_rows=1))
    assert f"pip install 'sql-traits[{extra}]'" in str(info.value)


def test_importing_traits_loads_no_driver() -> None:
    code = (
        "import sys, traits, traits.warehouses, traits.warehouses.redshift, traits.warehouses.snowflake, "
        "traits.warehouses.bigquery, traits.warehouses.postgres, traits.warehouses.duckdb, traits.warehouses.sqlalchemy, "
        "traits.config.dbt, traits.config.selectors, traits.cli.main\n"
        "drivers = ['redshift_connector', 'snowflake.connector', 'google.cloud.bigquery', 'psycopg', 'adbc_driver_postgresql', "
        "'sqlalchemy', 'pymysql', 'pymssql', 'pyodbc', 'trino', 'duckdb_engine', 'dbt']\n"
        "loaded = [m for m in drivers if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_snowflake_key_pair_login(snowflake_engine: Engine, config_dir: Path) -> None:
    """The real connector reads and decrypts the key file and signs its JWT (fakesnow accepts any)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(b"s3cret"))
    (config_dir / "keys").mkdir()
    (config_dir / "keys" / "traits.p8").write_bytes(pem)
    source = {k: v for k, v in snowflake_engine.source.items() if k != "password"}
    with snowflake_engine.warehouse(config_dir, **{**source, "private_key_file": "keys/traits.p8",
                                                   "private_key_passphrase": "s3cret"}) as wh:
        args = wh.connect_args()  # type: ignore[attr-defined]
        assert args["authenticator"] == "SNOWFLAKE_JWT"
        assert args["private_key_file"] == str(config_dir / "keys" / "traits.p8")
        assert "password" not in args
        assert next(iter(wh.stream("select 1 as user_id", max_rows=1))).num_rows == 1
    with snowflake_engine.warehouse(config_dir, **{**source, "private_key_file": "keys/traits.p8",
                                                   "private_key_passphrase": "wrong"}) as wh, pytest.raises(WarehouseError, match="private_key_passphrase"):
        list(wh.stream("select 1 as user_id", max_rows=1))


def test_redshift_iam_settings_pass_through(tmp_path: Path) -> None:
    from traits.config.models import RedshiftSource
    from traits.warehouses.redshift import RedshiftWarehouse

    source = RedshiftSource.model_validate({
        "type": "redshift", "iam": True, "cluster_identifier": "analytics", "region": "eu-west-1", "db_user": "traits",
        "access_key_id": "AKIA-test", "secret_access_key": "secret-test", "database": "prod",
    })
    args = RedshiftWarehouse("wh", source, tmp_path).connect_args()
    assert args["iam"] is True
    assert (args["cluster_identifier"], args["region"], args["db_user"], args["database"]) == ("analytics", "eu-west-1", "traits", "prod")
    assert (args["access_key_id"], args["secret_access_key"]) == ("AKIA-test", "secret-test")
    assert args["application_name"] == "sql-traits"
    assert "host" not in args


# -- the SQLAlchemy source on MariaDB ---------------------------------------------------------------

def test_mariadb_session_is_read_only_with_timeout_and_utc(mariadb_engine: Engine, config_dir: Path) -> None:
    sql = "select @@session.tx_read_only as ro, @@session.max_statement_time as st, @@session.time_zone as tz, current_user() as who"
    with mariadb_engine.warehouse(config_dir, statement_timeout=42) as wh:
        row = next(iter(wh.stream(sql, max_rows=1))).to_pylist()[0]
    assert row == {"ro": 1, "st": 42.0, "tz": "+00:00", "who": f"{mariadb_engine.backend['user']}@%"}


def test_mariadb_check_lists_only_readable_tables(mariadb_engine: Engine, config_dir: Path) -> None:
    with mariadb_engine.warehouse(config_dir) as wh:
        lines = wh.check()
    assert "read-only transaction" in lines[0]
    assert f"{mariadb_engine.conf}.numbers" in lines[1]
    assert "secrets" not in lines[1]


def test_sqlalchemy_url_password_never_prints(mariadb_engine: Engine, config_dir: Path) -> None:
    url = mariadb_engine.source["url"]
    wrong = url.replace(":pw-", ":wrong-pw-")
    wh = mariadb_engine.warehouse(config_dir, url=wrong)
    with wh, pytest.raises(WarehouseError) as info:
        list(wh.stream("select 1 as user_id", max_rows=1))
    assert "refused the credentials" in str(info.value)
    assert info.value.exit_code == 3
    password = wrong.split(":")[2].split("@")[0]
    assert password not in str(info.value)
    assert password not in wh.safe_url()  # type: ignore[attr-defined]
    assert password not in repr(mariadb_engine.model(url=wrong))


def test_sqlalchemy_refused_connection_is_a_warehouse_error(mariadb_engine: Engine, config_dir: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mariadb_engine.warehouse(config_dir, url=f"mysql+pymysql://u:p@127.0.0.1:{port}/db") as wh, pytest.raises(WarehouseError) as info:
        list(wh.stream("select 1 as user_id", max_rows=1))
    assert info.value.exit_code == 3
    assert "host and port" in (info.value.hint or "")


def test_sqlalchemy_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pydantic import TypeAdapter

    from traits.config.models import SourceConfig
    from traits.warehouses import open_warehouse

    monkeypatch.setitem(sys.modules, "pymysql", None)  # import now raises ImportError
    source = TypeAdapter(SourceConfig).validate_python({"type": "sqlalchemy", "url": "mysql+pymysql://u:p@127.0.0.1/db"})
    with open_warehouse("wh", source, tmp_path) as wh, pytest.raises(ConfigError) as info:
        list(wh.stream("select 1", max_rows=1))
    assert "pip install 'sql-traits[mysql]'" in str(info.value)


def test_sqlalchemy_sqlite_session_is_query_only(tmp_path: Path) -> None:
    """SQLite through SQLAlchemy: the session's PRAGMA query_only refuses a write that got past the select wrapper."""
    import sqlite3

    from pydantic import TypeAdapter
    from sqlalchemy.exc import DBAPIError

    from traits.config.models import SourceConfig
    from traits.warehouses import open_warehouse

    db = tmp_path / "app.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("create table people (id text, n integer)")
        conn.execute("insert into people values ('u1', 1), ('u2', 2)")
    source = TypeAdapter(SourceConfig).validate_python({"type": "sqlalchemy", "url": f"sqlite:///{db}", "batch_rows": 1000})
    with open_warehouse("wh", source, tmp_path) as wh:
        rows = [r for b in wh.stream("select id as user_id, n from people", max_rows=10) for r in b.to_pylist()]
        assert rows == [{"user_id": "u1", "n": 1}, {"user_id": "u2", "n": 2}]
        with wh.engine().connect() as conn:  # type: ignore[attr-defined]
            wh._prepare(conn)  # type: ignore[attr-defined]
            with pytest.raises(DBAPIError) as raised:
                conn.exec_driver_sql("delete from people")
        mapped = wh._error(raised.value.orig, "delete from people", "delete from people", timed_out=False)  # type: ignore[attr-defined]
        assert "read-only" in str(mapped)
        assert mapped.exit_code == 3
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from people").fetchone() == (2,)


def test_mariadb_bit_tinyint_year_and_unsigned_overflow(mariadb_engine: Engine, config_dir: Path) -> None:
    from traits.errors import ValidationError

    table = f"{mariadb_engine.conf}.bits_{uuid.uuid4().hex[:8]}"
    mariadb_engine.admin(f"create table {table} (b1 bit(1), b8 bit(8), t1 tinyint(1), t4 tinyint, y year, u bigint unsigned)")
    mariadb_engine.admin(f"insert into {table} values (1, 200, 0, 7, 2024, 5), (0, 3, 1, -1, 1999, 18446744073709551615)")
    with mariadb_engine.warehouse(config_dir) as wh:
        batch = next(iter(wh.stream(f"select b1, b8, t1, t4, y from {table} order by y desc", max_rows=10)))
        assert batch.to_pylist() == [{"b1": True, "b8": 200, "t1": False, "t4": 7, "y": 2024},
                                     {"b1": False, "b8": 3, "t1": True, "t4": -1, "y": 1999}]
        with pytest.raises(ValidationError, match="cast the column"):
            list(wh.stream(f"select u from {table}", max_rows=10))


def test_sqlalchemy_dialects_without_a_server_here_get_their_timeout_and_limit() -> None:
    """SQL Server and Trino cannot run here: the plumbing that reaches their drivers is checked instead."""
    from traits.warehouses import sa_dialects as d

    trino = d.connect_args("trino", "", 90, {"session_properties": {"query_priority": "2"}})
    assert trino["session_properties"] == {"query_priority": "2", "query_max_execution_time": "90s"}
    assert trino["source"] == "sql-traits"
    assert d.connect_args("mssql", "pymssql", 42.5, {})["timeout"] == 42
    assert d.session_statements("mssql", mariadb=False, timeout=2) == ["SET LOCK_TIMEOUT 2000"]
    assert d.limited_sql("mssql", "mssql", "select 1 as user_id;\n-- note", 10) == "select top (11) * from (\nselect 1 as user_id\n) as sql_traits_result"
    assert d.session_statements("mysql", mariadb=False, timeout=1.5)[1] == "SET SESSION max_execution_time = 1500"
    assert d.session_statements("mysql", mariadb=True, timeout=1.5)[1] == "SET SESSION max_statement_time = 1.5"
    assert d.session_statements("postgres", mariadb=False, timeout=3)[0] == "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"


@pytest.mark.parametrize(("url", "extra"), [("trino://u@127.0.0.1:8080/hive", "trino"), ("mssql+pymssql://u:p@127.0.0.1/db", "mssql")])
def test_sqlalchemy_missing_dialect_names_the_extra(tmp_path: Path, url: str, extra: str) -> None:
    import importlib.util

    from pydantic import TypeAdapter

    from traits.config.models import SourceConfig
    from traits.warehouses import open_warehouse

    if importlib.util.find_spec("trino" if extra == "trino" else "pymssql"):
        pytest.skip(f"the {extra} driver is installed here")
    source = TypeAdapter(SourceConfig).validate_python({"type": "sqlalchemy", "url": url})
    with open_warehouse("wh", source, tmp_path) as wh, pytest.raises(ConfigError) as info:
        list(wh.stream("select 1", max_rows=1))
    assert f"pip install 'sql-traits[{extra}]'" in str(info.value)


@pytest.mark.parametrize("engine_name", ["mariadb", "sqlalchemy_postgres"])
def test_sqlalchemy_sql_with_percent_and_colons_runs_as_written(request: pytest.FixtureRequest, engine_name: str, config_dir: Path) -> None:
    """The trait's SQL reaches the driver untouched: no %-interpolation, no :name bind parameters."""
    engine: Engine = request.getfixturevalue(f"{engine_name}_engine")
    sql = f"select 'u:x' as user_id, count(*) as n from {engine.conf}.numbers where n % 1000 = 0 and 'a%b' like 'a%'"
    with engine.warehouse(config_dir) as wh:
        rows = next(iter(wh.stream(sql, max_rows=1))).to_pylist()
    assert rows == [{"user_id": "u:x", "n": 2}]
