"""Query: run the trait's SQL on its warehouse and stream the rows in bounded batches.

Batches are read ahead on a thread (a few at most), so the warehouse keeps sending while the
previous batch is written to the staging file: drivers and Parquet release the GIL.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from traits.errors import ValidationError

if TYPE_CHECKING:
    import pyarrow as pa

    from traits.warehouses.base import Warehouse

Progress = Callable[[int], None]
#: batches read ahead of the one being staged; memory stays bounded by this many batches
READ_AHEAD = 3
_DONE = object()


def fetch(warehouse: Warehouse, sql: str, *, max_rows: int, trait: str, progress: Progress | None = None) -> Iterator[pa.RecordBatch]:
    """Yield the result's batches; stop the query and fail as soon as it passes ``max_rows``."""
    seen = 0
    for batch in read_ahead(warehouse.stream(sql, max_rows=max_rows), on_abandon=warehouse.cancel):
        seen += batch.num_rows
        if seen > max_rows:
            raise ValidationError(
                f"trait {trait}: the result has more than max_rows = {max_rows:,} rows; the query was stopped there",
                hint="narrow the query, or raise max_rows on the trait or in settings",
            )
        if progress is not None:
            progress(batch.num_rows)
        yield batch


def read_ahead(source: Iterator[Any], depth: int = READ_AHEAD, on_abandon: Callable[[], None] | None = None) -> Iterator[Any]:
    """Iterate ``source`` on a thread, at most ``depth`` items ahead of the consumer.

    A consumer that stops early (a batch failed validation) calls ``on_abandon`` so the source
    stops at once (the warehouse cancels the query) instead of after its next batch.
    """
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            items.put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            items.put(e)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="traits-read-ahead", daemon=True)
    thread.start()
    finished = False
    try:
        while True:
            item = items.get()
            if item is _DONE:
                finished = True
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        if not finished and thread.is_alive() and on_abandon is not None:
            on_abandon()
        while thread.is_alive():  # let the producer see the stop and close the query
            try:
                items.get(timeout=0.1)
            except queue.Empty:
                continue
        thread.join()
