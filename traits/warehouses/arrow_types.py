"""Make drivers' Arrow batches portable: types every engine stages to Parquet the same way.

Drivers hand back types that Parquet cannot store, that DuckDB would read differently, or that
would lose their meaning. Each becomes one plain Arrow type per kind of value, so a value
stages identically whichever warehouse it came from:

| driver Arrow type                              | staged as                                   |
|------------------------------------------------|---------------------------------------------|
| ``arrow.opaque`` numeric (ADBC Postgres),      | string + ``DECIMAL_TEXT`` marker            |
| decimal256 (BigQuery BIGNUMERIC)               |                                             |
| ``arrow.json``                                 | ``arrow.json`` (DuckDB reads it as JSON)    |
| other extension types (uuid, …)                | their storage type (uuid → its text)        |
| timestamp of any unit, with or without zone    | timestamp[us], zone ``UTC`` when it had one |
| time32 / time64 of any unit                    | time64[us]                                  |
| date64                                         | date32                                      |
| large_string / large_binary / string_view      | string / binary                             |
| month-day-nano interval                        | float64 seconds (a month counts 30 days)    |

Driver field metadata is dropped; only this module's marker is kept. Sub-microsecond
precision is truncated: JSON carries milliseconds anyway.
"""

from __future__ import annotations

import pyarrow as pa

MARKER = b"sql_traits.type"
DECIMAL_TEXT = {MARKER: b"decimal"}
JSON_TEXT = {MARKER: b"json"}

_MONTH_SECONDS = 30 * 86400


def _marker_only(field: pa.Field) -> dict[bytes, bytes] | None:
    if field.metadata and MARKER in field.metadata:
        return {MARKER: field.metadata[MARKER]}
    return None


def portable_type(t: pa.DataType) -> tuple[pa.DataType, dict[bytes, bytes] | None]:
    """The staged type for a driver's type, and the marker it needs (if any)."""
    if isinstance(t, pa.BaseExtensionType):
        name = t.extension_name
        if name == "arrow.json":
            return t, None
        if name == "arrow.opaque" and getattr(t, "type_name", "") == "numeric":
            return pa.string(), DECIMAL_TEXT
        if name == "arrow.uuid":
            return pa.string(), None
        return portable_type(t.storage_type)
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC" if t.tz else None), None
    if pa.types.is_time(t):
        return pa.time64("us"), None
    if pa.types.is_date64(t):
        return pa.date32(), None
    if pa.types.is_decimal256(t):
        return pa.string(), DECIMAL_TEXT
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string(), None
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary(), None
    if t == pa.month_day_nano_interval():
        return pa.float64(), None
    return t, None


def portable_schema_field(field: pa.Field) -> pa.Field:
    t, marker = portable_type(field.type)
    metadata = marker or _marker_only(field)
    if t is field.type and metadata == field.metadata:
        return field
    return pa.field(field.name, t, nullable=field.nullable, metadata=metadata)


def portable_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([portable_schema_field(f) for f in schema])


def portable_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    fields = [portable_schema_field(f) for f in batch.schema]
    if all(a is b for a, b in zip(fields, batch.schema, strict=True)):
        return batch
    columns = [_convert(column, old, new) for column, old, new in zip(batch.columns, batch.schema, fields, strict=True)]
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))


def _convert(column: pa.Array, old: pa.Field, new: pa.Field) -> pa.Array:
    if old.type == new.type:
        return column
    if old.type == pa.month_day_nano_interval():
        return _interval_seconds(column)
    if isinstance(new.type, pa.BaseExtensionType):  # json text from a plain string
        storage = column.storage if isinstance(column, pa.ExtensionArray) else column
        return pa.ExtensionArray.from_storage(new.type, storage.cast(new.type.storage_type))
    storage = column.storage if isinstance(column, pa.ExtensionArray) else column
    if isinstance(old.type, pa.BaseExtensionType) and old.type.extension_name == "arrow.uuid":
        return pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())
    return storage.cast(new.type, safe=False)


def _interval_seconds(column: pa.Array) -> pa.Array:
    values = [
        None if v is None else v.months * _MONTH_SECONDS + v.days * 86400 + v.nanoseconds / 1e9
        for v in column.to_pylist()
    ]
    return pa.array(values, pa.float64())


def mark_json(batch: pa.RecordBatch, names: set[str]) -> pa.RecordBatch:
    """Columns the engine typed as JSON but the driver handed over as plain strings, marked as JSON."""
    if not names:
        return batch
    pairs = zip(batch.schema, batch.columns, strict=True)
    columns = [as_json_text(c) if f.name in names and pa.types.is_string(f.type) else c for f, c in pairs]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def mark_decimal_text(batch: pa.RecordBatch, names: set[str]) -> pa.RecordBatch:
    """String columns that hold numerics as text (a server printed them), marked as ``DECIMAL_TEXT``."""
    if not names:
        return batch
    fields = [f.with_metadata(DECIMAL_TEXT) if f.name in names and pa.types.is_string(f.type) else f for f in batch.schema]
    return pa.RecordBatch.from_arrays(batch.columns, schema=pa.schema(fields))


def as_json_text(column: pa.Array) -> pa.Array:
    """A string column of JSON text as the ``arrow.json`` extension type."""
    storage = column.storage if isinstance(column, pa.ExtensionArray) else column
    return pa.ExtensionArray.from_storage(pa.json_(), storage.cast(pa.string()))
