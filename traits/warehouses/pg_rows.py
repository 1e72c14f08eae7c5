"""Rows from a Postgres-protocol DB-API driver (psycopg, redshift_connector) as Arrow batches.

The column types come from the result's type OIDs, so an empty result still has a schema.
Values are converted once per batch of rows, never per value in a hot path of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

from traits.warehouses.arrow_types import DECIMAL_TEXT

# Postgres / Redshift type OID -> Arrow type
OID_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 26: pa.int64(),
    700: pa.float32(), 701: pa.float64(), 1082: pa.date32(), 1083: pa.time64("us"),
    1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"), 17: pa.binary(), 1186: pa.float64(),
    6551: pa.binary(),  # Redshift VARBYTE
}
#: one-dimensional arrays of the types above (psycopg and redshift-connector give lists)
ARRAY_OIDS: dict[int, pa.DataType] = {
    1000: pa.bool_(), 1005: pa.int16(), 1007: pa.int32(), 1016: pa.int64(), 1021: pa.float32(), 1022: pa.float64(),
    1009: pa.string(), 1015: pa.string(), 1182: pa.date32(),
}
NUMERIC_OID = 1700
#: json, jsonb, and Redshift's SUPER
JSON_OIDS = {114, 3802, 4000}


def schema_for(columns: Iterable[tuple[str, int]]) -> pa.Schema:
    """An Arrow schema from ``(name, type_oid)`` pairs."""
    fields = []
    for name, oid in columns:
        if oid == NUMERIC_OID:
            fields.append(pa.field(name, pa.string(), metadata=DECIMAL_TEXT))
        elif oid in JSON_OIDS:
            fields.append(pa.field(name, pa.json_()))
        elif oid in ARRAY_OIDS:
            fields.append(pa.field(name, pa.list_(ARRAY_OIDS[oid])))
        else:
            fields.append(pa.field(name, OID_TYPES.get(oid, pa.string())))
    return pa.schema(fields)


def rows_to_batch(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.RecordBatch:
    columns = [_column([row[index] for row in rows], field) for index, field in enumerate(schema)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _seconds(value: Any) -> float | None:
    """An interval: psycopg's timedelta, or redshift-connector's Interval (months, days, microseconds)."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    months, days, micros = (getattr(value, k, 0) or 0 for k in ("months", "days", "microseconds"))
    return float(months * 30 * 86400 + days * 86400 + micros / 1e6)


def _bytes(value: Any) -> bytes | None:
    """Bytes, or the ``\\x…`` hex text some drivers return for bytea and VARBYTE."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return bytes.fromhex(value[2:] if value.startswith("\\x") else value)
    return bytes(value)


def _column(values: list[Any], field: pa.Field) -> pa.Array:
    t = field.type
    if isinstance(t, pa.BaseExtensionType):  # json
        return pa.ExtensionArray.from_storage(t, pa.array([_json_text(v) for v in values], pa.string()))
    if t == pa.float64() and any(v is not None and not isinstance(v, float | int) for v in values):
        return pa.array([_seconds(v) for v in values], t)
    if t == pa.string():
        return pa.array([None if v is None else (format(v, "f") if isinstance(v, Decimal) else str(v)) for v in values], t)
    if t == pa.binary():
        return pa.array([_bytes(v) for v in values], t)
    return pa.array(values, t)
