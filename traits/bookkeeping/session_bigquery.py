"""The bookkeeping session on BigQuery, through ``google-cloud-bigquery`` (the source's own driver).

Every statement is a query job with the source's job settings (``jobTimeoutMs``, bytes cap,
label); ``%s`` placeholders go as positional query parameters, never spliced into the SQL.

- The bookkeeping schema is a dataset, created in the source's ``location``; BigQuery has no enforced keys, so ``primary key`` in a
  table definition is written ``primary key … not enforced`` (what BigQuery accepts).
- Uploaded ids: ``insert … select id from unnest(?)`` with one ARRAY<STRING> parameter per
  ``CHUNK`` ids, one DML job per chunk (a request stays far below BigQuery's 10 MB). For
  millions of ids a load job from a Parquet file would cost no DML slots; the stand-in has no
  upload endpoint, so the array parameter is the path tested here.
- ``transaction``: a BigQuery session (``create_session``) holding ``begin transaction`` …
  ``commit transaction``, every statement inside sent with its ``session_id``, the session
  ended after (``BQ.ABORT_SESSION``). BigQuery refuses DDL on permanent tables inside a
  transaction, so DDL inside (a reseed's table swap) waits and runs as its own jobs after the
  commit (``session_ddl.DeferredDDL``); the DML (the snapshot fold) is atomic.
- ``INFORMATION_SCHEMA`` must be qualified in BigQuery: the schemata by the project's region,
  the tables by the dataset.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from traits.bookkeeping.dialects import dialect_for
from traits.bookkeeping.session_ddl import DeferredDDL
from traits.bookkeeping.sessions import Session, id_chunks
from traits.errors import WarehouseError

if TYPE_CHECKING:
    import pyarrow as pa

    from traits.config.models import BigQuerySource
    from traits.warehouses.bigquery import BigQueryWarehouse

#: ids per insert job
CHUNK = 50_000
_CREATE_SCHEMA = re.compile(r"^\s*create\s+schema\s+(if\s+not\s+exists\s+)?`[^`]+`\s*$", re.I)
_CREATE_TABLE_COLUMNS = re.compile(r"^\s*create\s+table\s+(if\s+not\s+exists\s+)?\S+\s*\(", re.I)
_PRIMARY_KEY = re.compile(r"\bprimary key(\s*\([^)]*\))?(?!\s+not enforced)", re.I)


class BigQuerySession(Session):
    def __init__(self, source: str, config: BigQuerySource, warehouse: BigQueryWarehouse) -> None:
        super().__init__(source, config, warehouse)
        self.bigquery = warehouse
        self.timeout = config.statement_timeout
        self.dialect = dialect_for("bigquery")
        self.client: Any = warehouse.client()
        self.location: str | None = config.location
        self._session_id: str | None = None
        self._ddl = DeferredDDL()

    def _sql(self, sql: str, params: Sequence[Any]) -> str:
        """BigQuery's spelling of the bookkeeping statements. A statement that embeds the trait's
        SQL has no parameters and is no ``create table (…)`` with columns: it is left alone."""
        if self.location and _CREATE_SCHEMA.match(sql):  # the dataset where the source's jobs run
            sql = f"{sql.rstrip()} options (location = '{self.location}')"
        if _CREATE_TABLE_COLUMNS.match(sql):
            sql = _PRIMARY_KEY.sub(lambda m: f"primary key{m.group(1) or ''} not enforced", sql)
        if not params:
            return sql
        region = f"region-{(self.location or 'us').lower()}"
        sql = re.sub(r"\binformation_schema\.schemata\b", f"`{region}`.INFORMATION_SCHEMA.SCHEMATA", sql, flags=re.I)
        sql = re.sub(r"\binformation_schema\.tables\b", f"`{self.schema}`.INFORMATION_SCHEMA.TABLES", sql, flags=re.I)
        return sql.replace("%s", "?")

    def _job(self, sql: str, params: Sequence[Any], *, session: bool, create_session: bool = False) -> Any:
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        config = self.bigquery.job_config()
        config.query_parameters = [_parameter(v) for v in params]
        if create_session:
            config.create_session = True
        elif session and self._session_id is not None:
            config.connection_properties = [bigquery.ConnectionProperty("session_id", self._session_id)]
        try:
            job = self.client.query(self._sql(sql, params), job_config=config, location=self.location)
            rows = job.result(timeout=self.timeout + 30.0)
        except gexc.GoogleAPIError as e:
            raise self._error(e) from e
        except OSError as e:
            raise WarehouseError(f"source {self.source}: cannot reach BigQuery ({e})") from e
        return job, rows

    def _error(self, error: Any) -> WarehouseError:
        errors = list(getattr(error, "errors", None) or [])
        message = str(errors[0].get("message", "")) if errors and isinstance(errors[0], dict) else str(error)
        if int(getattr(error, "code", 0) or 0) == 403:
            return WarehouseError(
                f"source {self.source}: the bookkeeping dataset {self.schema!r} is not writable: {message}",
                hint="grant the service account BigQuery Data Editor on that dataset",
            )
        return WarehouseError(f"source {self.source}: bookkeeping statement failed: {message}")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        if not self._ddl.hold(sql, params):
            self._job(sql, params, session=True)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        _, rows = self._job(sql, params, session=True)
        return [tuple(r.values()) for r in rows]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        def begin() -> None:
            job, _ = self._job("begin transaction", (), session=False, create_session=True)
            self._session_id = job.session_info.session_id if job.session_info else None

        def commit() -> None:
            self._job("commit transaction", (), session=True)
            self._end_session()

        def rollback() -> None:
            try:
                self._job("rollback transaction", (), session=True)
            finally:
                self._end_session()

        try:
            with self._ddl.transaction(begin, commit, rollback, lambda sql, params: self._job(sql, params, session=False)):
                yield
        finally:
            self._end_session()

    def _end_session(self) -> None:
        if self._session_id is not None:
            with contextlib.suppress(WarehouseError):
                self._job("call BQ.ABORT_SESSION()", (), session=True)
            self._session_id = None

    def upload_ids(self, table: str, ids: Iterator[pa.Array]) -> int:
        self.execute(f"create table {table} (sql_traits_id string, primary key (sql_traits_id))")
        count = 0
        for chunk in id_chunks(ids, CHUNK):
            self.execute(f"insert into {table} (sql_traits_id) select id from unnest(%s) as id", [chunk])
            count += len(chunk)
        return count

    def tables(self, prefix: str) -> list[str]:
        rows = self.rows("select table_name from information_schema.tables where table_schema = %s and starts_with(table_name, %s)",
                         (self.schema, prefix))
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


def _parameter(value: Any) -> Any:
    from google.cloud import bigquery

    if isinstance(value, list):
        return bigquery.ArrayQueryParameter(None, "STRING", [str(v) for v in value])
    if isinstance(value, bool):
        return bigquery.ScalarQueryParameter(None, "BOOL", value)
    if isinstance(value, int):
        return bigquery.ScalarQueryParameter(None, "INT64", value)
    return bigquery.ScalarQueryParameter(None, "STRING", None if value is None else str(value))
