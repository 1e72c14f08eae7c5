"""The bookkeeping session on Redshift, through ``redshift-connector`` (the source's own driver).

- The source's login, with its ``statement_timeout`` set on the session, in autocommit, so
  each statement commits at once; ``transaction`` is an explicit ``begin`` …
  ``commit`` (``rollback`` on any error): Redshift's DDL is transactional, so a snapshot's swap
  and its ``snapshots`` row commit together.
- Uploaded ids go in as multi-row ``insert … values (%s), (%s), …`` statements of
  ``CHUNK`` bound ids each: Redshift's bulk path without S3 (``COPY`` needs a bucket and an
  IAM role the source does not configure), and far below its 16 MB statement and 32,767
  parameter limits.
- Text columns are ``varchar(65535)``: Redshift's ``text`` and bare ``varchar`` are 256 bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from traits.bookkeeping.dialects import dialect_for
from traits.bookkeeping.sessions import Session, id_chunks
from traits.errors import WarehouseError
from traits.warehouses.base import APPLICATION_NAME, fmt_error

if TYPE_CHECKING:
    import pyarrow as pa

    from traits.config.models import RedshiftSource
    from traits.warehouses.redshift import RedshiftWarehouse

#: ids per multi-row insert
CHUNK = 5_000


class RedshiftSession(Session):
    def __init__(self, source: str, config: RedshiftSource, warehouse: RedshiftWarehouse) -> None:
        super().__init__(source, config, warehouse)
        self.dialect = dialect_for("redshift")
        self.conn = warehouse.connect()  # autocommit, as the warehouse opens it
        timeout = max(int(config.statement_timeout * 1000), 1)
        for statement in [f"set application_name to '{APPLICATION_NAME}'", f"set statement_timeout to {timeout}",
                          *self.dialect.session_settings()]:
            self.execute(statement)

    def _error(self, error: Exception) -> WarehouseError:
        fields = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
        text = str(fields.get("M") or fmt_error(error))
        if fields.get("C") == "42501":
            return WarehouseError(
                f"source {self.source}: the bookkeeping schema {self.schema!r} is not writable: {text}",
                hint="grant the role write access in it: traits validate --connect prints the GRANT statements",
            )
        return WarehouseError(f"source {self.source}: bookkeeping statement failed: {text}")

    def _run(self, sql: str, params: Sequence[Any], fetch: bool) -> list[tuple[Any, ...]]:
        from redshift_connector.error import Error

        cursor = self.conn.cursor()
        try:
            cursor.execute(sql, tuple(params) if params else None)
            return [tuple(r) for r in cursor.fetchall()] if fetch and cursor.description else []
        except Error as e:
            raise self._error(e) from e
        finally:
            cursor.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._run(sql, params, fetch=False)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._run(sql, params, fetch=True)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._statements_transaction("begin")

    def upload_ids(self, table: str, ids: Iterator[pa.Array]) -> int:
        self.execute(f"create table {table} (sql_traits_id {self.dialect.text_type} primary key)")
        count = 0
        for chunk in id_chunks(ids, CHUNK):
            self.execute(f"insert into {table} (sql_traits_id) values " + ", ".join(["(%s)"] * len(chunk)), chunk)
            count += len(chunk)
        return count

    def tables(self, prefix: str) -> list[str]:
        rows = self.rows(
            "select table_name from information_schema.tables where table_schema = %s and table_name like %s",
            (self.schema, prefix + "%"),  # ("_" matches any one character: the check below is exact)
        )
        return [str(r[0]) for r in rows if str(r[0]).startswith(prefix)]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
