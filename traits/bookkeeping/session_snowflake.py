"""The bookkeeping session on Snowflake, through ``snowflake-connector-python`` (the source's own driver).

- One connection, logged in as the source logs in (timeout, query tag) with ``TIMEZONE`` UTC
  among the login's session parameters (the stand-in refuses ``alter session set timezone``).
  The bookkeeping schema, its tables and their columns are Snowflake's folded upper-case names
  (``SQL_TRAITS``), so they read the same quoted or not (``SnowflakeDialect.quote``).
- Uploaded ids: ``executemany`` of an ``insert … values (%s)``, which the connector rewrites
  into one multi-row insert per ``CHUNK`` ids (client-side binding, escaped by the connector).
  Real Snowflake would take millions of ids faster as ``write_pandas`` (PUT to the table's
  stage + ``COPY INTO``); the stand-in (fakesnow's server) has no stage to PUT to, and a chunk
  of 10,000 ids stays well under Snowflake's 1 MB statement text.
- A table renamed to an unqualified name would move to the session's current schema (the
  source's), so a rename's new name is qualified with the table's schema.
- Scratch tables are ``transient`` (no fail-safe storage for tables that live one run).
- ``transaction``: ``begin`` … ``commit``. Snowflake would commit an open transaction before
  any DDL and run the DDL on its own, splitting it; so DDL inside (a reseed's table swap) is
  held back and runs after the DML commits (``DeferredDDL``). The fold is DML only, atomic; a
  reseed killed between its commit and its swap left the local store's lineage behind, so the
  next run reseeds again.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from traits.bookkeeping.dialects import dialect_for, snowflake_name
from traits.bookkeeping.session_ddl import DeferredDDL
from traits.bookkeeping.sessions import Session, id_chunks
from traits.errors import WarehouseError
from traits.warehouses.base import fmt_error

if TYPE_CHECKING:
    import pyarrow as pa

    from traits.config.models import SnowflakeSource
    from traits.warehouses.snowflake import SnowflakeWarehouse

#: ids per multi-row insert
CHUNK = 10_000
_RENAME = re.compile(r'^\s*alter\s+table\s+((?:"[^"]+"\.)+)("[^"]+")\s+rename\s+to\s+("[^"]+")\s*$', re.I)


class SnowflakeSession(Session):
    def __init__(self, source: str, config: SnowflakeSource, warehouse: SnowflakeWarehouse) -> None:
        super().__init__(source, config, warehouse)
        self.dialect = dialect_for("snowflake")
        self.schema = snowflake_name(self.schema)
        self.conn = _connect(warehouse)
        self._ddl = DeferredDDL()
        for statement in self.dialect.session_settings():
            self.execute(statement)

    def _error(self, error: Exception) -> WarehouseError:
        errno = int(getattr(error, "errno", 0) or 0)
        text = str(getattr(error, "raw_msg", None) or fmt_error(error)).strip().splitlines()[0]
        if errno == 3001 or "insufficient privileges" in text.lower():
            return WarehouseError(
                f"source {self.source}: the bookkeeping schema {self.schema!r} is not writable: {text}",
                hint="grant the role write access in it: traits validate --connect prints the GRANT statements",
            )
        return WarehouseError(f"source {self.source}: bookkeeping statement failed: {text}")

    def _cursor(self) -> Any:
        return self.conn.cursor()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        import snowflake.connector

        cursor = self._cursor()
        try:
            cursor.execute(sql, tuple(params) if params else None)
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
        except snowflake.connector.Error as e:
            raise self._error(e) from e
        finally:
            cursor.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        # Snowflake moves a table renamed to an unqualified name into the session's current
        # schema: the new name gets the table's own schema
        sql = _RENAME.sub(r"alter table \1\2 rename to \1\3", sql)
        if not self._ddl.hold(sql, params):
            self.rows(sql, params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._ddl.transaction(lambda: self.rows("begin"), lambda: self.rows("commit"), lambda: self.rows("rollback"),
                                   self.rows):
            yield

    def upload_ids(self, table: str, ids: Iterator[pa.Array]) -> int:
        import snowflake.connector

        self.execute(f"create {self.dialect.scratch_table} {table} (sql_traits_id {self.dialect.text_type} primary key)")
        count = 0
        for chunk in id_chunks(ids, CHUNK):
            cursor = self._cursor()
            try:
                cursor.executemany(f"insert into {table} (sql_traits_id) values (%s)", [(v,) for v in chunk])
            except snowflake.connector.Error as e:
                raise self._error(e) from e
            finally:
                cursor.close()
            count += len(chunk)
        return count

    def tables(self, prefix: str) -> list[str]:
        rows = self.rows(
            "select table_name from information_schema.tables where upper(table_schema) = %s and upper(table_name) like %s",
            (self.schema.upper(), prefix.upper() + "%"),
        )
        # (``_`` in like matches any one character: the check here is exact)
        return [name for r in rows if (name := str(r[0]).lower()).startswith(prefix)]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


def _connect(warehouse: SnowflakeWarehouse) -> Any:
    import snowflake.connector

    args = warehouse.connect_args()
    args["session_parameters"] = {**args.get("session_parameters", {}), "TIMEZONE": "UTC"}
    try:
        return snowflake.connector.connect(**args)
    except snowflake.connector.Error as e:
        raise warehouse.error(e) from e
