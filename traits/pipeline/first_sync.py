"""A first sync's change file, written batch by batch while the result is staged.

A destination with no snapshot gets every row of the result as added: its change file is each
staged row with its canonical JSON and the snapshot's columns (``diff.first_sync_sql``), and
nothing in it depends on another row. Written as the batches arrive, the JSON is made and the
file encoded while the engine would otherwise wait on the warehouse, instead of in a pass of
its own over the staged file after the query: on two cores that pass was a fifth of a 10M-row
first sync. The diff then takes the file as it is (``LocalDiffer``); a run that stages nothing
(a resumed one) or whose file was not completed leaves the diff to write it as before.

Row order does not matter in a change file, so the engine may reorder each batch.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from traits.pipeline.diff import first_sync_sql

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from traits.pipeline.validate import Shape

#: rows per row group, as the diff writes them
ROW_GROUP_ROWS = 20_000


class FirstSyncFile:
    """Appends each staged batch's change rows to ``path`` (complete only once ``close`` succeeded)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, run_id: str) -> None:
        self.con = con
        self.path = path
        self.run_id = run_id
        self._tmp = path.with_name(path.name + ".tmp")
        self._writer: pq.ParquetWriter | None = None
        self._sql = ""

    def add(self, shape: Shape, batch: pa.RecordBatch) -> None:
        """Write the change rows of ``batch``, a staged batch (its row hashes included)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._sql:
            self._sql = first_sync_sql(shape, "sql_traits_first_sync", self.run_id)
        self.con.register("sql_traits_first_sync", pa.Table.from_batches([batch]))
        try:
            rows = self.con.sql(self._sql).to_arrow_table()
        finally:
            self.con.unregister("sql_traits_first_sync")
        if self._writer is None:
            # no dictionaries (the values are mostly distinct), statistics only for the ids,
            # which a lookup of one id can skip row groups by
            self._writer = pq.ParquetWriter(self._tmp, rows.schema, compression="lz4", use_dictionary=False, write_statistics=["id"])
        self._writer.write_table(rows, row_group_size=ROW_GROUP_ROWS)

    def close(self) -> Path | None:
        """Complete the file; ``None`` when no batch came (the diff then writes the file itself)."""
        writer, self._writer = self._writer, None
        if writer is None:
            return None
        writer.close()
        os.replace(self._tmp, self.path)
        return self.path

    def __enter__(self) -> FirstSyncFile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is not None and self._writer is not None:
            self._writer.close()
            self._writer = None
            self._tmp.unlink(missing_ok=True)
