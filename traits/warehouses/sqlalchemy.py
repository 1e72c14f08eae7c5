"""Any SQLAlchemy 2.x dialect as a source: MySQL/MariaDB, SQL Server, Trino, SQLite, DuckDB, …

The query runs through SQLAlchemy Core on one connection (no pool), with ``stream_results``
(a server-side cursor where the driver has one: PyMySQL's unbuffered cursor, psycopg's named
cursor) and is read ``batch_rows`` at a time with ``partitions(batch_rows)`` — never
``partitions()`` without a size, which loads everything. Rows become Arrow batches typed as the
native engines type them (``sa_rows``). The session is made read-only and given a statement
timeout the way its engine allows (``sa_dialects``); where the engine has no server-side
timeout a watchdog interrupts the query. The URL is a secret: its password never reaches a
message (``safe_url``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from traits.config.env import redact
from traits.errors import ConfigError, WarehouseError
from traits.warehouses import sa_dialects as dialects
from traits.warehouses.arrow_types import portable_batch
from traits.warehouses.base import Warehouse, fmt_error, missing_driver
from traits.warehouses.sa_rows import column_kinds, rows_to_batch, schema_for

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa
    import sqlalchemy

    from traits.config.models import SqlAlchemySource


class SqlAlchemyWarehouse(Warehouse):
    config: SqlAlchemySource

    def __init__(self, name: str, config: Any, config_dir: Path) -> None:
        super().__init__(name, config, config_dir)
        self.dialect = self.config.dialect
        self.family = dialects.family(self.dialect)
        self.text_type = dialects.text_type(self.family)
        self._engine: sqlalchemy.Engine | None = None
        #: MySQL's account (``user@host`` as granted), which a GRANT hint must name
        self._account: str | None = None

    # -- the engine ----------------------------------------------------------------------------
    def _url(self) -> sqlalchemy.URL:
        sa = _sqlalchemy()
        try:
            url = sa.make_url(self.config.url.get_secret_value())
        except sa.exc.ArgumentError as e:
            raise ConfigError(f"source {self.name}: url is not a SQLAlchemy URL", hint="write it as dialect+driver://user:password@host/db") from e
        if url.password:
            redact.add(str(url.password))
        parsed: sqlalchemy.URL = url
        return parsed

    def safe_url(self) -> str:
        return self._url().render_as_string(hide_password=True)

    @property
    def user(self) -> str | None:
        return self._url().username

    def engine(self) -> sqlalchemy.Engine:
        if self._engine is None:
            sa = _sqlalchemy()
            from sqlalchemy.pool import NullPool

            url = self._url()
            driver = url.drivername.partition("+")[2]  # as written: get_driver_name() would load the dialect
            args = dialects.connect_args(self.family, driver, self.config.statement_timeout, self.config.connect_args)
            try:
                self._engine = sa.create_engine(url, connect_args=args, poolclass=NullPool)
            except sa.exc.NoSuchModuleError as e:
                raise self._missing(f"the SQLAlchemy dialect {self.dialect!r} is not installed") from e
            except ModuleNotFoundError as e:
                raise self._missing(f"the driver {e.name!r} of the {self.dialect} dialect is not installed") from e
        return self._engine

    def _missing(self, what: str) -> ConfigError:
        extra = dialects.EXTRAS.get(self.family)
        hint = f"pip install 'sql-traits[{extra}]'" if extra in ("mysql", "mssql", "trino", "postgres") else (
            f"pip install {extra}" if extra else "install the dialect's package (see SQLAlchemy's list of dialects)")
        return ConfigError(f"source {self.name}: {what}", hint=hint)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- the session ---------------------------------------------------------------------------
    def _prepare(self, conn: sqlalchemy.Connection) -> None:
        """Make the session read-only with a statement timeout, then open a read-only transaction."""
        mariadb = bool(getattr(conn.dialect, "is_mariadb", False))
        for statement in dialects.session_statements(self.family, mariadb=mariadb, timeout=self.config.statement_timeout):
            conn.exec_driver_sql(statement)
        if self.family == "mssql":
            raw = conn.connection.dbapi_connection
            if raw is not None and hasattr(raw, "timeout"):
                raw.timeout = max(int(self.config.statement_timeout), 1)  # pyodbc: the query timeout, in seconds
        if self.family == "mysql" and self._account is None:
            self._account = str(conn.exec_driver_sql("select current_user()").scalar())
        conn.commit()
        begin = dialects.begin_statement(self.family)
        if begin:
            conn.exec_driver_sql(begin)

    def _watchdog(self, conn: sqlalchemy.Connection) -> threading.Timer | None:
        if self.family not in dialects.WATCHDOG:
            return None
        raw = conn.connection.dbapi_connection
        stop = getattr(raw, "interrupt", None) or getattr(raw, "cancel", None)
        if stop is None:
            return None
        timer = threading.Timer(self.config.statement_timeout, stop)
        timer.daemon = True
        timer.start()
        return timer

    # -- the query -----------------------------------------------------------------------------
    def stream(self, sql: str, *, max_rows: int) -> Iterator[pa.RecordBatch]:
        sa = _sqlalchemy()
        engine = self.engine()
        wrapped = dialects.limited_sql(self.family, self.dialect, sql, max_rows)
        batch_rows = self.config.batch_rows
        timer: threading.Timer | None = None
        try:
            with engine.connect() as conn:
                self._prepare(conn)
                conn.execution_options(stream_results=True, max_row_buffer=batch_rows, no_parameters=True)
                timer = self._watchdog(conn)
                result = conn.exec_driver_sql(wrapped)
                try:
                    yield from self._batches(result, max_rows)
                finally:
                    result.close()
                conn.rollback()
        except sa.exc.DBAPIError as e:
            timed_out = timer is not None and not timer.is_alive()
            raise self._error(e.orig if e.orig is not None else e, sql, wrapped, timed_out=timed_out) from e
        except sa.exc.SQLAlchemyError as e:
            raise WarehouseError(f"source {self.name}: {fmt_error(e)}") from e
        finally:
            if timer is not None:
                timer.cancel()

    def _batches(self, result: sqlalchemy.CursorResult[Any], max_rows: int) -> Iterator[pa.RecordBatch]:
        description = result.cursor.description if result.cursor is not None else None
        if not description:
            raise WarehouseError(f"source {self.name}: the statement returned no rows", hint="the SQL must be one SELECT statement")
        names = [str(d[0]) for d in description]
        left = max_rows + 1  # one row past the cap is enough for the caller to reject the result
        schema: pa.Schema | None = None
        kinds: list[str] = []
        for part in result.partitions(self.config.batch_rows):
            rows = part[:left]
            if schema is None:
                kinds = column_kinds(description, rows, dialect=self.dialect, json_columns=self.config.json_columns)
                schema = schema_for(names, kinds)
            yield portable_batch(rows_to_batch(rows, schema, kinds))
            left -= len(rows)
            if left <= 0:
                return
        if schema is None:
            kinds = column_kinds(description, [], dialect=self.dialect, json_columns=self.config.json_columns)
            yield portable_batch(rows_to_batch([], schema_for(names, kinds), kinds))

    def _error(self, orig: BaseException, sql: str, wrapped: str, *, timed_out: bool) -> WarehouseError:
        return dialects.dbapi_error(self.family, f"source {self.name}", orig, sql=sql, wrapped=wrapped,
                                    user=self._account if self.family == "mysql" else self.user,
                                    timeout=self.config.statement_timeout, timed_out=timed_out)

    def literal(self, value: str) -> str:
        if self.family == "mysql":
            value = value.replace("\\", "\\\\")
        return super().literal(value)

    # -- validate --connect --------------------------------------------------------------------
    def check(self) -> list[str]:
        if self.family == "mysql":
            sql = ("select concat(table_schema, '.', table_name) as t from information_schema.tables "
                   "where table_schema not in ('mysql', 'information_schema', 'performance_schema', 'sys') order by 1")
        elif self.family == "postgres":
            sql = ("select table_schema || '.' || table_name as t from information_schema.tables "
                   "where has_table_privilege(quote_ident(table_schema) || '.' || quote_ident(table_name), 'SELECT') "
                   "and table_schema not in ('pg_catalog', 'information_schema') order by 1")
        else:
            sql = "select 1 as t"
        names = [str(v) for batch in self.stream(sql, max_rows=10_000) for v in batch.column(0).to_pylist()]
        lines = [f"connected as {self.user or 'the configured user'} to {self.safe_url()} ({READ_ONLY[self.family]})"]
        if self.family in ("mysql", "postgres"):
            shown = ", ".join(names[:10]) + (" …" if len(names) > 10 else "")
            lines.append(f"{len(names)} readable table(s): {shown or 'none'}")
        return lines


#: what keeps each family's session from writing, as ``validate --connect`` says it
READ_ONLY = {
    "mysql": "read-only transaction", "postgres": "read-only transaction", "sqlite": "query_only session",
    "duckdb": "file opened read-only", "mssql": "no read-only session: the login's grants keep it read-only",
    "trino": "no read-only session: access control keeps it read-only", "other": "no read-only session: the user's grants keep it read-only",
}


def _sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError as e:
        raise missing_driver("sqlalchemy", "sqlalchemy") from e
    return sqlalchemy
