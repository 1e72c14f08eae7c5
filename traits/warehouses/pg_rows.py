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


def _column(values: list[Any], field: pa.Field) -> pa.Array:
    t = field.type
    if isinstance(t, pa.BaseExtensionType):  # json
        return pa.ExtensionArray.from_storage(t, pa.array([_json_text(v) for v in values], pa.string()))
    if t == pa.float64() and any(isinstance(v, timedelta) for v in values):
        return pa.array([None if v is None else v.total_seconds() for v in values], t)
    if t == pa.string():
        return pa.array([None if v is None else (format(v, "f") if isinstance(v, Decimal) else str(v)) for v in values], t)
    if t == pa.binary():
        return pa.array([None if v is None else bytes(v) for v in values], t)
    return pa.array(values, t)
