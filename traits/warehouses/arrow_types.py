"""Make drivers' Arrow batches portable: types every engine stages to Parquet the same way.

Drivers hand back extension types (Postgres ``numeric`` as an opaque string, intervals as
month-day-nano) that Parquet cannot store or that would lose their meaning. Each becomes a
plain Arrow type, with a field-metadata marker where the meaning is not in the type.
"""

from __future__ import annotations

import pyarrow as pa


MARKER = b"sql_traits.type"
DECIMAL_TEXT = {MARKER: b"decimal"}
JSON_TEXT = {MARKER: b"json"}

_MONTH_SECONDS = 30 * 86400


def portable_schema_field(field: pa.Field) -> pa.Field:
    t = field.type
    if isinstance(t, pa.ExtensionType):
        name = t.extension_name
        if name in ("arrow.json", "arrow.uuid"):
            return field
        if name == "arrow.opaque" and getattr(t, "type_name", "") == "numeric":
            return pa.field(field.name, pa.string(), metadata=DECIMAL_TEXT)
        if pa.types.is_string(t.storage_type) or pa.types.is_large_string(t.storage_type):
            return pa.field(field.name, pa.string())
        return pa.field(field.name, t.storage_type)
    if t == pa.month_day_nano_interval():
        return pa.field(field.name, pa.float64())
    return field


def portable_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    fields = [portable_schema_field(f) for f in batch.schema]
    if all(a is b for a, b in zip(fields, batch.schema, strict=True)):
        return batch
    columns = []
    for column, old, new in zip(batch.columns, batch.schema, fields, strict=True):
        if new is old:
            columns.append(column)
        elif old.type == pa.month_day_nano_interval():
            columns.append(_interval_seconds(column))
        else:
            storage = column.storage if isinstance(column, pa.ExtensionArray) else column
            columns.append(storage.cast(new.type))
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))


def _interval_seconds(column: pa.Array) -> pa.Array:
    values = [
        None if v is None else v.months * _MONTH_SECONDS + v.days * 86400 + v.nanoseconds / 1e9
        for v in column.to_pylist()
    ]
    return pa.array(values, pa.float64())


