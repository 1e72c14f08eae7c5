"""DuckDB as a source: an embedded database file, opened read-only."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from traits.errors import WarehouseError
from traits.warehouses.arrow_types import mark_json, portable_batch
from traits.warehouses.base import Warehouse, fmt_error, limited, resolve_path

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from traits.config.models import DuckDBSource


class DuckDBWarehouse(Warehouse):
    config: DuckDBSource

    def _connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        path = resolve_path(self.config_dir, self.config.path)
        if not path.exists():
            raise WarehouseError(
                f"source {self.name}: the DuckDB file {path} does not exist",
                hint="check the path (relative paths resolve against the config directory)",
            )
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.Error as e:
            raise WarehouseError(f"source {self.name}: cannot open {path}: {fmt_error(e)}", hint="is another process writing to it?") from e

    def stream(self, sql: str, *, max_rows: int) -> Iterator[pa.RecordBatch]:
        import duckdb

        con = self._connect()
        self._canceller = con.interrupt
        timer = threading.Timer(self.config.statement_timeout, con.interrupt)
        timer.daemon = True
        timer.start()
        wrapped = limited(sql, max_rows)
        try:
            yield from relation_batches(con.sql(wrapped), self.config.batch_rows)
        except duckdb.Error as e:
            raise self._error(e, sql, wrapped, timed_out=not timer.is_alive()) from e
        finally:
            self._canceller = None
            timer.cancel()
            con.close()

    def _error(self, error: Exception, sql: str, wrapped: str, *, timed_out: bool) -> WarehouseError:
        import duckdb

        text = fmt_error(error)
        where = f"source {self.name}"
        if timed_out or isinstance(error, duckdb.InterruptException):
            return WarehouseError(
                f"{where}: the query ran past statement_timeout ({self.config.statement_timeout:g}s) and was stopped",
                hint="make the query cheaper or raise statement_timeout",
            )
        if "read-only mode" in text:
            return WarehouseError(f"{where}: the trait SQL tried to write ({text})", hint="trait SQL must be a read-only SELECT")
        if isinstance(error, duckdb.ParserException):
            return WarehouseError(f"{where}: SQL syntax error at {_position(error)}", hint="fix the trait's SQL")
        if isinstance(error, duckdb.CatalogException):
            return WarehouseError(f"{where}: {text}", hint="check the table and schema names in the trait's SQL")
        return WarehouseError(f"{where}: {text}")

    def check(self) -> list[str]:
        con = self._connect()
        try:
            tables = con.execute(
                "select table_schema || '.' || table_name from information_schema.tables order by 1 limit 50"
            ).fetchall()
        finally:
            con.close()
        shown = ", ".join(t[0] for t in tables[:10])
        return [f"connected to {resolve_path(self.config_dir, self.config.path)}", f"{len(tables)} readable table(s): {shown or 'none'}"]


def relation_batches(relation: duckdb.DuckDBPyRelation, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """A relation's rows as portable batches (at least one, for the schema)."""
    import pyarrow as pa

    # DuckDB exports JSON as plain text: mark it from the relation's own types
    json_columns = {name for name, kind in zip(relation.columns, relation.types, strict=True) if str(kind) == "JSON"}
    reader = relation.to_arrow_reader(batch_rows)
    yielded = False
    for batch in reader:
        yielded = True
        yield portable_batch(mark_json(batch, json_columns))
    if not yielded:
        yield portable_batch(mark_json(pa.RecordBatch.from_pylist([], schema=reader.schema), json_columns))


_LINE = re.compile(r"^LINE (\d+): ?", re.M)


def _position(error: BaseException) -> str:
    """``at line L, column C: message``, relative to the trait's SQL, not the wrapper around it.

    DuckDB prints the line (``LINE 3: …``) and a caret under the column on the next line.
    """
    full = str(error)
    first = fmt_error(error)
    match = _LINE.search(full)
    if not match:
        return f"position unknown: {first}"
    line = max(int(match.group(1)) - 1, 1)  # the wrapper adds one line before the SQL
    caret_line = full[match.end():].split("\n", 2)
    column = None
    if len(caret_line) > 1 and "^" in caret_line[1]:
        column = caret_line[1].index("^") - len(match.group(0)) + 1
    where = f"line {line}, column {column}" if column and column > 0 else f"line {line}"
    return f"{where}: {first}"
