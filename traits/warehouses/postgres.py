"""Postgres as a source.

Two drivers, one behaviour. ``adbc`` (adbc-driver-postgresql) reads the result over COPY
straight into Arrow record batches, the fastest path; ``psycopg`` (psycopg 3) reads through a
server-side cursor in chunks. ``driver: auto`` takes adbc when it is installed.

The session is read-only, has a statement timeout and the application name ``sql-traits``,
all set as connection options, so they hold before the first statement runs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pyarrow as pa

from traits.columnar import quote_ident
from traits.errors import WarehouseError
from traits.warehouses.arrow_types import mark_decimal_text, portable_batch
from traits.warehouses.base import APPLICATION_NAME, Warehouse, limited, missing_driver
from traits.warehouses.pg_errors import connection_error, pg_error, readable_tables
from traits.warehouses.pg_rows import rows_to_batch, schema_for

if TYPE_CHECKING:
    from traits.config.models import PostgresSource

CONNECT_TIMEOUT = 10


def session_options(statement_timeout: float, *, read_only: bool = True) -> str:
    millis = max(int(statement_timeout * 1000), 1)
    return f"-c default_transaction_read_only={'on' if read_only else 'off'} -c statement_timeout={millis}"


class PostgresWarehouse(Warehouse):
    config: PostgresSource
    engine = "Postgres"

    def conninfo(self, *, read_only: bool = True) -> str:
        """The libpq connection string; ``read_only=False`` for warehouse mode's bookkeeping session."""
        plain = self._conninfo_without_psycopg(read_only)
        if plain is not None:
            return plain
        try:
            from psycopg.conninfo import conninfo_to_dict, make_conninfo
        except ImportError as e:
            raise missing_driver("psycopg", "postgres") from e
        c = self.config
        params: dict[str, Any] = conninfo_to_dict(c.dsn.get_secret_value()) if c.dsn else {}
        for key, value in (("host", c.host), ("port", c.port if c.host else None), ("dbname", c.database), ("user", c.user),
                           ("password", c.password.get_secret_value() if c.password else None), ("sslmode", c.sslmode)):
            if value is not None:
                params[key] = value
        extra = params.get("options", "")
        params["options"] = (str(extra) + " " + session_options(c.statement_timeout, read_only=read_only)).strip()
        params["application_name"] = APPLICATION_NAME
        params.setdefault("connect_timeout", CONNECT_TIMEOUT)
        return make_conninfo(**params)

    def _conninfo_without_psycopg(self, read_only: bool) -> str | None:
        """The conninfo of the two plain cases, made without psycopg (~9 MB a process holds).

        A ``postgresql://`` URI with no parameters and no field overriding it gets the session's
        parameters as its query string; fields alone (``host`` …) become ``key=value`` pairs,
        quoted as psycopg's ``make_conninfo`` quotes them. libpq reads either as the pairs
        psycopg would have written. Anything else (parameters of its own, which ``options`` must
        be merged with, or fields over a DSN) is parsed by psycopg (libpq), as before.
        """
        c = self.config
        session = {"options": session_options(c.statement_timeout, read_only=read_only), "application_name": APPLICATION_NAME,
                   "connect_timeout": str(CONNECT_TIMEOUT)}
        if c.dsn is not None:
            dsn = c.dsn.get_secret_value()
            overridden = any(v is not None for v in (c.host, c.database, c.user, c.password, c.sslmode))
            if overridden or not dsn.startswith(("postgresql://", "postgres://")) or any(ch in dsn for ch in "?#"):
                return None
            return dsn + "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in session.items())
        fields = {"host": c.host, "port": str(c.port) if c.host else None, "dbname": c.database, "user": c.user,
                  "password": c.password.get_secret_value() if c.password else None, "sslmode": c.sslmode}
        pairs = {k: v for k, v in fields.items() if v is not None} | session
        return " ".join(f"{k}={_conninfo_value(v)}" for k, v in pairs.items())

    @property
    def user(self) -> str | None:
        if self.config.user:
            return self.config.user
        try:
            from psycopg.conninfo import conninfo_to_dict

            return str(conninfo_to_dict(self.config.dsn.get_secret_value()).get("user")) if self.config.dsn else None
        except Exception:  # noqa: BLE001 - only for a hint
            return None

    def driver(self) -> str:
        if self.config.driver != "auto":
            return self.config.driver
        return "adbc" if importlib.util.find_spec("adbc_driver_postgresql") else "psycopg"

    def stream(self, sql: str, *, max_rows: int) -> Iterator[pa.RecordBatch]:
        wrapped = limited(sql, max_rows)
        if self.driver() == "adbc":
            yield from self._stream_adbc(sql, wrapped)
        else:
            yield from self._stream_psycopg(sql, wrapped)

    # -- adbc ------------------------------------------------------------------------------
    def _stream_adbc(self, sql: str, wrapped: str) -> Iterator[pa.RecordBatch]:
        # the driver manager's low-level API, not its DB-API module: that one imports
        # pyarrow.dataset (and with it Arrow's S3, Substrait and Acero libraries), ~6 MB a
        # process holds for nothing here. This is what the DB-API cursor does for a query.
        try:
            import adbc_driver_postgresql
            from adbc_driver_manager import AdbcConnection, AdbcStatement, NotSupportedError
            from adbc_driver_manager import Error as AdbcError
            from adbc_driver_manager._reader import AdbcRecordBatchReader
        except ImportError as e:
            raise missing_driver("adbc-driver-postgresql", "postgres") from e
        try:
            database = adbc_driver_postgresql.connect(self.conninfo())
        except AdbcError as e:
            raise self._error(e, sql, wrapped) from e
        try:
            try:
                conn = AdbcConnection(database)
            except AdbcError as e:
                raise self._error(e, sql, wrapped) from e
            try:
                statement = AdbcStatement(conn)
                self._canceller = statement.cancel
                try:
                    conn.set_autocommit(False)  # as the DB-API connection: the query runs in a transaction
                    statement.set_sql_query(wrapped)
                    as_text = _numeric_columns(statement, NotSupportedError)
                    if as_text:
                        statement.set_sql_query(numeric_as_text(wrapped, as_text))
                    with contextlib.suppress(NotSupportedError):
                        statement.prepare()
                    handle, _ = statement.execute_query()
                    # the plain Arrow reader inside, as the DB-API's fetch_record_batch returns it
                    reader = AdbcRecordBatchReader._import_from_c(handle.address)._reader
                    numeric = {name for name, text in as_text.items() if text}
                    yielded = False
                    try:
                        for batch in reader:
                            # ADBC sizes batches by bytes (its batch_size_hint_bytes); slices cap the rows too
                            for offset in range(0, batch.num_rows, self.config.batch_rows):
                                yielded = True
                                yield mark_decimal_text(portable_batch(batch.slice(offset, self.config.batch_rows)), numeric)
                        if not yielded:
                            yield mark_decimal_text(portable_batch(pa.RecordBatch.from_pylist([], schema=reader.schema)), numeric)
                    finally:
                        reader.close()
                except (AdbcError, pa.ArrowException, OSError) as e:  # errors met mid-stream come as Arrow errors
                    raise self._error(e, sql, wrapped) from e
                finally:
                    self._canceller = None
                    statement.close()
            finally:
                conn.close()
        finally:
            database.close()

    # -- psycopg ---------------------------------------------------------------------------
    def _stream_psycopg(self, sql: str, wrapped: str) -> Iterator[pa.RecordBatch]:
        try:
            import psycopg
        except ImportError as e:
            raise missing_driver("psycopg", "postgres") from e
        try:
            conn = psycopg.connect(self.conninfo())
        except psycopg.Error as e:
            raise self._error(e, sql, wrapped) from e
        self._canceller = conn.cancel_safe if hasattr(conn, "cancel_safe") else conn.cancel
        try:
            with conn.cursor(name="sql_traits_result") as cursor:
                cursor.itersize = self.config.batch_rows
                try:
                    cursor.execute(wrapped)
                    schema = schema_for((c.name, c.type_code) for c in cursor.description or [])
                    while True:
                        rows = cursor.fetchmany(self.config.batch_rows)
                        yield rows_to_batch(rows, schema)
                        if len(rows) < self.config.batch_rows:
                            break
                except psycopg.Error as e:
                    # positions count from the start of the DECLARE psycopg sends for a named cursor
                    raise self._error(e, sql, f'DECLARE "sql_traits_result" CURSOR FOR {wrapped}') from e
        finally:
            self._canceller = None
            conn.close()

    # -- errors and checks -----------------------------------------------------------------
    def _error(self, error: Exception, sql: str, wrapped: str) -> WarehouseError:
        sqlstate = getattr(error, "sqlstate", None)
        diag = getattr(error, "diag", None)
        position = None
        if diag is not None and getattr(diag, "statement_position", None):
            position = int(diag.statement_position)
            message = str(diag.message_primary or error)
        else:
            message = _adbc_message(str(error))
        if sqlstate is None:
            conn = connection_error(f"source {self.name}", self.engine, message)
            if conn is not None:
                return conn
        return pg_error(self.name, self.engine, sqlstate, message, position=position, wrapped=wrapped, sql=sql,
                        user=self.user, timeout=self.config.statement_timeout)

    def check(self) -> list[str]:
        return readable_tables(self, self.user)


def _conninfo_value(value: str) -> str:
    """A conninfo value as psycopg's ``make_conninfo`` writes it: \\ and ' escaped, quoted when it has spaces."""
    if not value:
        return "''"
    value = re.sub(r"([\\'])", r"\\\1", value)
    return f"'{value}'" if re.search(r"\s", value) else value


def _adbc_message(text: str) -> str:
    """ADBC wraps the server's message: keep the server's part."""
    for marker in ("ERROR:", "FATAL:"):
        if marker in text:
            text = text[text.index(marker) :]
            break
    return text.split(". SQLSTATE:")[0].split("\nQuery was:")[0]


def _numeric_columns(statement: Any, not_supported: type[Exception]) -> dict[str, bool]:
    """The result's columns, each with whether it is a top-level ``numeric`` (empty: leave the query as it is).

    ADBC turns Postgres's binary numerics into text itself, several times slower than the
    server prints them: a 10M-row result with one numeric column read in 1.5× the time. So a
    numeric column is read as the server's text (``numeric_as_text``), which is the same text
    for every finite value and the spelling Postgres and psycopg use for NaN and ±Infinity.
    The columns come from describing the statement (no rows are read); a result whose column
    names repeat is left alone, for validation to refuse.
    """
    try:
        handle = statement.execute_schema()
    except not_supported:
        return {}
    schema = pa.Schema._import_from_c(handle.address)
    if len(set(schema.names)) != len(schema.names):
        return {}
    columns = {f.name: _is_numeric(f.type) for f in schema}
    return columns if any(columns.values()) else {}


def _is_numeric(t: pa.DataType) -> bool:
    return isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.opaque" and getattr(t, "type_name", "") == "numeric"


def numeric_as_text(sql: str, columns: dict[str, bool]) -> str:
    """``sql`` with its numeric columns (``columns``: name → is numeric) cast to text by the server."""
    q = quote_ident
    select = ", ".join(f"q.{q(n)}::text as {q(n)}" if numeric else f"q.{q(n)}" for n, numeric in columns.items())
    return f"select {select} from (\n{sql}\n) as q"
