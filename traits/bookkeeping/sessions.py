"""Write sessions inside the bookkeeping schema, one class per engine family.

The trait's SQL only ever runs as a subquery of a ``create table … as select`` here, so it
cannot write (Postgres refuses data-modifying statements below the top level; DuckDB has none);
what protects user data besides is the role: SELECT on the data, writes only in the
bookkeeping schema (``grants``). Rows come back through the source's own read path
(``Warehouse.stream``) where it can read the bookkeeping schema, so fetched values have exactly
the types, and JSON, of local mode's.

DuckDB keeps the bookkeeping schema in a database file of its own beside the data file (one
per trait, ``<data file>.sql_traits/<trait>.duckdb``), with the data file attached read-only:
a DuckDB file opened for writing excludes every other process, and the data file must stay
readable by them.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from traits.bookkeeping.dialects import Dialect, dialect_for
from traits.errors import WarehouseError
from traits.warehouses.base import APPLICATION_NAME, Warehouse, fmt_error, resolve_path

if TYPE_CHECKING:
    import pyarrow as pa

    from traits.config.models import DuckDBSource, SourceBase
    from traits.warehouses.postgres import PostgresWarehouse

W = TypeVar("W", bound=Warehouse)


class Session(ABC):
    """Statements in the bookkeeping schema, and reads of what it holds."""

    dialect: Dialect

    def __init__(self, source: str, config: SourceBase, warehouse: Warehouse) -> None:
        self.source = source
        self.config = config
        self.schema: str = config.bookkeeping_schema
        self.warehouse = warehouse

    def table(self, name: str) -> str:
        return self.dialect.table(self.schema, name)

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement (committed at once, unless inside ``transaction``)."""

    @abstractmethod
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query and return all its (few) rows."""

    @abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Statements run inside are committed together, or not at all."""

    @contextlib.contextmanager
    def _statements_transaction(self, begin: str) -> Iterator[None]:
        """A transaction by statements: ``begin``, then ``commit``, or ``rollback`` (whose own
        failure does not hide the error that caused it)."""
        self.execute(begin)
        try:
            yield
        except BaseException:
            with contextlib.suppress(WarehouseError):
                self.execute("rollback")
            raise
        self.execute("commit")

    @abstractmethod
    def upload_ids(self, table: str, ids: Iterator[pa.Array]) -> int:
        """Create ``table`` (one text column ``sql_traits_id``) holding ``ids``; returns the count."""

    @abstractmethod
    def tables(self, prefix: str) -> list[str]:
        """The bookkeeping schema's tables whose names start with ``prefix``."""

    def stream(self, sql: str) -> Iterator[pa.RecordBatch]:
        """Rows of a query over the bookkeeping schema, as the source's read path gives them."""
        return self.warehouse.stream(sql, max_rows=2**62)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection."""

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PostgresSession(Session):
    """Postgres through psycopg (Redshift has its own driver's session: ``session_redshift``)."""

    def __init__(self, source: str, config: SourceBase, warehouse: PostgresWarehouse, engine: str = "postgres") -> None:
        super().__init__(source, config, warehouse)
        self.dialect = dialect_for(engine)
        try:
            import psycopg
        except ImportError as e:
            raise WarehouseError("diff: warehouse needs the psycopg driver", hint="pip install 'sql-traits[postgres]'") from e
        try:
            self.conn = psycopg.connect(warehouse.conninfo(read_only=False), autocommit=True)
        except psycopg.Error as e:
            raise WarehouseError(f"source {source}: cannot open the bookkeeping session: {fmt_error(e)}") from e
        if engine == "postgres" and self.conn.info.server_version < 140000:
            self.dialect = dialect_for("postgres13")  # no hash_record_extended before 14
        for statement in [f"set application_name = '{APPLICATION_NAME}'", *self.dialect.session_settings()]:
            self.execute(statement)

    def _error(self, error: Exception, sql: str) -> WarehouseError:
        text = fmt_error(error)
        sqlstate = getattr(error, "sqlstate", None)
        if sqlstate == "42501":  # insufficient_privilege
            return WarehouseError(
                f"source {self.source}: the bookkeeping schema {self.schema!r} is not writable: {text}",
                hint="grant the role write access in it: traits validate --connect prints the GRANT statements",
            )
        return WarehouseError(f"source {self.source}: bookkeeping statement failed: {text}")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        import psycopg

        try:
            self.conn.execute(sql, params or None)
        except psycopg.Error as e:
            raise self._error(e, sql) from e

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            return list(self.conn.execute(sql, params or None).fetchall())
        except psycopg.Error as e:
            raise self._error(e, sql) from e

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        import psycopg

        try:
            with self.conn.transaction():
                yield
        except psycopg.Error as e:
            raise self._error(e, "transaction") from e

    def upload_ids(self, table: str, ids: Iterator[pa.Array]) -> int:
        import psycopg

        self.execute(f"create {self.dialect.scratch_table} {table} (sql_traits_id text primary key)")
        count = 0
        try:
            with self.conn.cursor() as cursor, cursor.copy(f"copy {table} (sql_traits_id) from stdin") as copy:
                for array in ids:
                    text = _copy_text(array)
                    if text:
                        copy.write(text)
                    count += len(array)
        except psycopg.Error as e:
            raise self._error(e, "copy") from e
        return count

    def tables(self, prefix: str) -> list[str]:
        rows = self.rows(
            "select table_name from information_schema.tables where table_schema = %s and table_name like %s",
            (self.schema, prefix.replace("_", "\\_") + "%"),
        )
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        self.conn.close()


def id_chunks(ids: Iterator[pa.Array], size: int) -> Iterator[list[str]]:
    """The ids of ``ids`` as text, ``size`` at a time (per array: each is a bounded batch)."""
    for array in ids:
        values = [v for v in array.cast("string").to_pylist() if v is not None]
        for start in range(0, len(values), size):
            yield values[start:start + size]


def _copy_text(array: pa.Array) -> bytes:
    """Ids as the lines of COPY's text format (backslash, tab and line ends escaped)."""
    import pyarrow.compute as pc

    text = array.cast("string")
    for plain, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        text = pc.replace_substring(text, plain, escaped)
    values = text.to_pylist()
    return ("".join(f"{v}\n" for v in values if v is not None)).encode()


class DuckDBSession(Session):
    """A DuckDB bookkeeping file per trait, the data file attached read-only as the default catalog."""

    CATALOG = "sql_traits_bookkeeping"

    def __init__(self, source: str, config: DuckDBSource, warehouse: Warehouse, trait: str, config_dir: Path) -> None:
        super().__init__(source, config, warehouse)
        import duckdb

        self.dialect = dialect_for("duckdb")
        data = resolve_path(config_dir, config.path)
        self.file = bookkeeping_file(data, trait)
        self.file.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect()
            self.con.execute(f"attach '{_sql_text(str(data))}' as sql_traits_data (read_only)")
            self.con.execute(f"attach '{_sql_text(str(self.file))}' as {self.CATALOG}")
            self.con.execute("use sql_traits_data")
            self.con.execute(f"create schema if not exists {self.CATALOG}.{self.dialect.quote(self.schema)}")
            for statement in self.dialect.session_settings():
                self.con.execute(statement)
        except duckdb.Error as e:
            raise WarehouseError(f"source {source}: cannot open the bookkeeping file {self.file}: {fmt_error(e)}",
                                 hint="is another process writing to it?") from e

    def table(self, name: str) -> str:
        return f"{self.CATALOG}.{self.dialect.table(self.schema, name)}"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.rows(sql, params)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        import duckdb

        try:
            # (only a statement with parameters has placeholders: one that embeds the trait's SQL has none)
            return list(self.con.execute(sql.replace("%s", "?") if params else sql, list(params) or None).fetchall())
        except duckdb.Error as e:
            raise WarehouseError(f"source {self.source}: bookkeeping statement failed: {fmt_error(e)}") from e

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._statements_transaction("begin transaction")

    def upload_ids(self, table: str, ids: Iterator[pa.Array]) -> int:
        import pyarrow as pa

        self.execute(f"create table {table} (sql_traits_id varchar primary key)")
        count = 0
        for array in ids:
            batch = pa.table({"sql_traits_id": array.cast("string")})
            self.con.register("sql_traits_upload", batch)
            try:
                self.execute(f"insert into {table} select sql_traits_id from sql_traits_upload")
            finally:
                self.con.unregister("sql_traits_upload")
            count += len(array)
        return count

    def tables(self, prefix: str) -> list[str]:
        rows = self.rows(
            "select table_name from duckdb_tables() where database_name = ? and schema_name = ? and starts_with(table_name, ?)",
            (self.CATALOG, self.schema, prefix),
        )
        return [str(r[0]) for r in rows]

    def stream(self, sql: str) -> Iterator[pa.RecordBatch]:
        from traits.warehouses.duckdb import relation_batches

        return relation_batches(self.con.sql(sql), self.config.batch_rows)

    def close(self) -> None:
        self.con.close()


def bookkeeping_file(data: Path, trait: str) -> Path:
    return data.with_name(data.name + ".sql_traits") / f"{trait}.duckdb"


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def open_session(source: str, config: SourceBase, warehouse: Warehouse, *, trait: str, config_dir: Path) -> Session:
    """The bookkeeping session of a source's engine, on the connection details of its warehouse."""
    from traits.config.models import BigQuerySource, DuckDBSource, RedshiftSource, SnowflakeSource

    if isinstance(config, DuckDBSource):
        return DuckDBSession(source, config, warehouse, trait, config_dir)
    if config.type == "postgres":
        from traits.warehouses.postgres import PostgresWarehouse

        return PostgresSession(source, config, _narrow(warehouse, PostgresWarehouse), "postgres")
    if isinstance(config, RedshiftSource):
        from traits.bookkeeping.session_redshift import RedshiftSession
        from traits.warehouses.redshift import RedshiftWarehouse

        return RedshiftSession(source, config, _narrow(warehouse, RedshiftWarehouse))
    if isinstance(config, SnowflakeSource):
        from traits.bookkeeping.session_snowflake import SnowflakeSession
        from traits.warehouses.snowflake import SnowflakeWarehouse

        return SnowflakeSession(source, config, _narrow(warehouse, SnowflakeWarehouse))
    if isinstance(config, BigQuerySource):
        from traits.bookkeeping.session_bigquery import BigQuerySession
        from traits.warehouses.bigquery import BigQueryWarehouse

        return BigQuerySession(source, config, _narrow(warehouse, BigQueryWarehouse))
    kind = config.type
    raise WarehouseError(f"source {source}: diff: warehouse has no bookkeeping session for type {kind} in this build",
                         hint="use diff: local for this source")


def _narrow(warehouse: Warehouse, cls: type[W]) -> W:
    """The source's warehouse as its engine's class (what ``open_warehouse`` made for its type)."""
    if not isinstance(warehouse, cls):
        raise TypeError(f"a {type(warehouse).__name__} is no {cls.__name__}")
    return warehouse
