"""Query: run the trait's SQL on its warehouse and stream the rows in bounded batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from traits.errors import ValidationError

if TYPE_CHECKING:
    import pyarrow as pa

    from traits.warehouses.base import Warehouse

Progress = Callable[[int], None]


def fetch(warehouse: Warehouse, sql: str, *, max_rows: int, trait: str, progress: Progress | None = None) -> Iterator[pa.RecordBatch]:
    """Yield the result's batches; stop the query and fail as soon as it passes ``max_rows``."""
    seen = 0
    batches = warehouse.stream(sql, max_rows=max_rows)
    try:
        for batch in batches:
            seen += batch.num_rows
            if seen > max_rows:
                raise ValidationError(
                    f"trait {trait}: the result has more than max_rows = {max_rows:,} rows; the query was stopped there",
                    hint="narrow the query, or raise max_rows on the trait or in settings",
                )
            if progress is not None:
                progress(seen)
            yield batch
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
