"""A first sync's change file, written batch by batch while the result is staged.

A destination with no snapshot gets every row of the result as added: its change file is each
staged row with its canonical JSON and the snapshot's columns (``diff.first_sync_sql``), and
nothing in it depends on another row. Written as the batches arrive, on a thread of its own
(with a connection of its own), the JSON is made and the file encoded while the staging goes
on and the engine waits on the warehouse, instead of in a pass of its own over the staged file
after the query. The diff then takes the file as it is (``LocalDiffer``); a run that stages
nothing (a resumed one) or whose file was not completed leaves the diff to write it as before.

Row order does not matter in a change file, so the engine may reorder each batch.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from traits import columnar
from traits.pipeline.diff import first_sync_sql
from traits.pipeline.validate import CALL_SIZE_SQL

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from traits.pipeline.validate import Shape

#: rows per row group, as the diff writes them
ROW_GROUP_ROWS = 20_000
#: staged batches waiting for the writer: one, so memory holds at most two batches besides staging's
QUEUED_BATCHES = 1


@dataclass(frozen=True)
class WrittenFirstSync:
    """A completed first-sync change file, and its largest row's size (``validate.CALL_SIZE_SQL``)."""

    path: Path
    largest: int


class FirstSyncFile:
    """Appends each staged batch's change rows to ``path`` (complete only once ``close`` succeeded)."""

    def __init__(self, path: Path, run_id: str, memory_limit: str | None = None) -> None:
        self.path = path
        self.run_id = run_id
        self._tmp = path.with_name(path.name + ".tmp")
        self._memory_limit = memory_limit
        self._queue: queue.Queue[tuple[Shape, pa.RecordBatch] | None] = queue.Queue(QUEUED_BATCHES)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wrote = False
        self._largest = 0

    def add(self, shape: Shape, batch: pa.RecordBatch) -> None:
        """Queue the change rows of ``batch``, a staged batch (its row hashes included)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_all, name="traits-first-sync", daemon=True)
            self._thread.start()
        self._raise()
        while True:
            try:
                self._queue.put((shape, batch), timeout=0.5)
                return
            except queue.Full:  # the writer is behind, or it stopped on an error
                self._raise()

    def close(self) -> WrittenFirstSync | None:
        """Complete the file; ``None`` when no batch came (the diff then writes the file itself)."""
        if self._thread is None:
            return None
        self._queue.put(None)
        self._thread.join()
        self._thread = None
        self._raise()
        if not self._wrote:
            return None
        os.replace(self._tmp, self.path)
        return WrittenFirstSync(self.path, self._largest)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _write_all(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        con = columnar.connect(self.path, self._memory_limit)
        writer: pq.ParquetWriter | None = None
        sql = ""
        try:
            while (item := self._queue.get()) is not None and not self._stop.is_set():
                shape, batch = item
                sql = sql or first_sync_sql(shape, "sql_traits_first_sync", self.run_id)
                con.register("sql_traits_first_sync", pa.Table.from_batches([batch]))
                try:
                    rows = con.sql(sql).to_arrow_table()
                finally:
                    con.unregister("sql_traits_first_sync")
                con.register("sql_traits_first_sync_rows", rows)
                try:
                    size = con.execute(f"select max({CALL_SIZE_SQL}) from sql_traits_first_sync_rows").fetchall()[0][0]
                finally:
                    con.unregister("sql_traits_first_sync_rows")
                self._largest = max(self._largest, int(size or 0))
                if writer is None:
                    # no dictionaries (the values are mostly distinct), statistics only for the
                    # ids, which a lookup of one id can skip row groups by
                    writer = pq.ParquetWriter(self._tmp, rows.schema, compression="lz4", use_dictionary=False, write_statistics=["id"])
                writer.write_table(rows, row_group_size=ROW_GROUP_ROWS)
            if writer is not None:
                writer.close()
                writer = None
                self._wrote = True
        except BaseException as e:  # noqa: BLE001 - handed to the staging thread, which raises it
            self._error = e
        finally:
            if writer is not None:
                writer.close()
            con.close()

    def __enter__(self) -> FirstSyncFile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._thread is not None:  # staging failed: stop the writer and drop its file
            self._stop.set()
            while self._thread.is_alive():
                try:
                    self._queue.put(None, timeout=0.5)
                except queue.Full:
                    continue
                break
            self._thread.join()
            self._thread = None
        if exc_type is not None or not self._wrote:
            self._tmp.unlink(missing_ok=True)
