"""Stage: write the streamed batches to a local Parquet file so the run never re-queries."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from traits.errors import ValidationError, WarehouseError


@dataclass(frozen=True)
class Staged:
    path: Path
    rows: int
    schema: pa.Schema
    #: the Arrow bytes of the batches read
    bytes: int = 0


def stage(
    batches: Iterable[pa.RecordBatch], path: Path, *, trait: str, augment: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None
) -> Staged:
    """Write ``batches`` to ``path`` (atomically: a killed run leaves no half file under that name).

    ``augment`` turns each batch into the one written (it adds the row hashes).
    """
    tmp = path.with_name(path.name + ".tmp")
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    rows = size = 0
    try:
        for batch in batches:
            if schema is None:
                schema = checked_schema(batch.schema, trait)
            elif not batch.schema.equals(schema):
                batch = _conform(batch, schema, trait)
            written = augment(batch) if augment is not None else batch
            if writer is None:
                # no encoding or compression: either costs more CPU than the read on two cores,
                # and the file lives only as long as the run
                writer = pq.ParquetWriter(tmp, written.schema, compression="none", use_dictionary=False, write_statistics=False)
            writer.write_batch(written, row_group_size=256 * 1024)
            rows += batch.num_rows
            size += batch.nbytes
    finally:
        if writer is not None:
            writer.close()
    if writer is None or schema is None:
        raise WarehouseError(f"trait {trait}: the warehouse returned no result set", hint="the SQL must be one SELECT statement")
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return Staged(path, rows, schema, size)


def checked_schema(schema: pa.Schema, trait: str) -> pa.Schema:
    seen: dict[str, str] = {}
    for name in schema.names:
        folded = name.lower()
        if folded in seen:
            raise ValidationError(
                f"trait {trait}: column {name!r} appears more than once (as {seen[folded]!r} too)",
                hint="give each column its own alias",
            )
        seen[folded] = name
        if not name:
            raise ValidationError(f"trait {trait}: a column has no name", hint="give every expression an alias")
    return schema


def _conform(batch: pa.RecordBatch, schema: pa.Schema, trait: str) -> pa.RecordBatch:
    if batch.schema.names != schema.names:
        raise WarehouseError(f"trait {trait}: the warehouse changed the result's columns mid-stream")
    try:
        return pa.RecordBatch.from_arrays(
            [col if col.type == field.type else col.cast(field.type) for col, field in zip(batch.columns, schema, strict=True)],
            schema=schema,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise ValidationError(f"trait {trait}: a column's type changed between batches ({e})", hint="cast the column to one type in SQL") from e
