"""Rows of any DBAPI driver (through SQLAlchemy) as Arrow batches, typed like the native engines.

A column's kind is fixed once per result, from the first of:

1. the driver's type code where the dialect is known (PyMySQL's MySQL/MariaDB field types:
   ``TINYINT(1)``/``BOOLEAN`` and ``BIT(1)`` are booleans, ``BIT(n)`` a number, ``TIME`` a time
   of day, ``TIMESTAMP`` UTC, ``JSON`` JSON, ``DECIMAL`` exact digits);
2. the source's ``json_columns`` (MariaDB sends JSON as LONGTEXT, indistinguishable from text);
3. the Python type of the column's first non-null value in the first batch (``bool``, ``int``,
   ``float``, ``Decimal``, ``date``, ``datetime`` with or without a zone, ``time``,
   ``timedelta`` as seconds, ``bytes``, ``dict``/``list`` as JSON, anything else as text);
4. text, for a column that is null throughout the first batch.

Each kind becomes the same Arrow type the native engines stage (``arrow_types``), so the JSON a
value is sent as does not depend on the engine it came from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

from traits.errors import ValidationError
from traits.warehouses.arrow_types import DECIMAL_TEXT

# PyMySQL's FIELD_TYPE codes (the MySQL client protocol's column types)
_MYSQL_TYPES: dict[int, str] = {
    0: "decimal", 246: "decimal", 2: "int", 3: "int", 8: "int", 9: "int", 13: "int", 4: "float", 5: "float",
    7: "timestamp_utc", 12: "timestamp", 10: "date", 14: "date", 11: "time_of_day", 245: "json",
}
_MYSQL_TINY = 1
_MYSQL_BIT = 16

#: each kind of column and the Arrow type it is staged as (before ``arrow_types.portable_batch``)
KIND_TYPES: dict[str, pa.DataType] = {
    "bool": pa.bool_(), "int": pa.int64(), "bit_bool": pa.bool_(), "bit_int": pa.int64(), "float": pa.float64(), "decimal": pa.string(), "date": pa.date32(),
    "time": pa.time64("us"), "time_of_day": pa.time64("us"), "timestamp": pa.timestamp("us"),
    "timestamp_utc": pa.timestamp("us", tz="UTC"), "timestamp_tz": pa.timestamp("us", tz="UTC"), "seconds": pa.float64(),
    "binary": pa.binary(), "json": pa.json_(), "string": pa.string(),
}


def mysql_kind(type_code: Any, internal_size: Any) -> str | None:
    if type_code == _MYSQL_TINY:
        return "bool" if internal_size == 1 else "int"
    if type_code == _MYSQL_BIT:  # BIT(1) is a flag, BIT(n) a number; PyMySQL hands both over as bytes
        return "bit_bool" if internal_size == 1 else "bit_int"
    return _MYSQL_TYPES.get(type_code) if isinstance(type_code, int) else None


def value_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, Decimal):
        return "decimal"
    if isinstance(value, datetime):
        return "timestamp_tz" if value.tzinfo is not None else "timestamp"
    if isinstance(value, date):
        return "date"
    if isinstance(value, time):
        return "time"
    if isinstance(value, timedelta):
        return "seconds"
    if isinstance(value, bytes | bytearray | memoryview):
        return "binary"
    if isinstance(value, dict | list | tuple):
        return "json"
    return "string"


def column_kinds(description: Sequence[Sequence[Any]], rows: Sequence[Sequence[Any]], *, dialect: str,
                 json_columns: Sequence[str] = ()) -> list[str]:
    kinds: list[str] = []
    for index, column in enumerate(description):
        name = str(column[0])
        kind = mysql_kind(column[1], column[3] if len(column) > 3 else None) if dialect in ("mysql", "mariadb") else None
        if kind is None and name in json_columns:
            kind = "json"
        if kind is None or kind == "binary":
            first = next((row[index] for row in rows if row[index] is not None), None)
            # a MySQL text type code also carries binary strings: the value tells which
            kind = value_kind(first) if first is not None else (kind or "string")
        kinds.append(kind)
    return kinds


def schema_for(names: Sequence[str], kinds: Sequence[str]) -> pa.Schema:
    fields = []
    for name, kind in zip(names, kinds, strict=True):
        metadata = DECIMAL_TEXT if kind == "decimal" else None
        fields.append(pa.field(name, KIND_TYPES[kind], metadata=metadata))
    return pa.schema(fields)


def rows_to_batch(rows: Sequence[Sequence[Any]], schema: pa.Schema, kinds: Sequence[str]) -> pa.RecordBatch:
    columns = [_column([row[i] for row in rows], field, kind) for i, (field, kind) in enumerate(zip(schema, kinds, strict=True))]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _column(values: list[Any], field: pa.Field, kind: str) -> pa.Array:
    t = field.type
    try:
        if kind == "json":
            return pa.ExtensionArray.from_storage(t, pa.array([_json_text(v) for v in values], pa.string()))
        if kind == "decimal":
            return pa.array([None if v is None else (format(v, "f") if isinstance(v, Decimal) else str(v)) for v in values], t)
        if kind == "string":
            return pa.array([None if v is None or isinstance(v, str) else _text(v) for v in values] if _mixed(values) else values, t)
        if kind == "bool":
            return pa.array([None if v is None else bool(v) for v in values], t)
        if kind in ("bit_bool", "bit_int"):
            numbers = [None if v is None else (int.from_bytes(v, "big") if isinstance(v, bytes) else int(v)) for v in values]
            return pa.array([None if n is None else n != 0 for n in numbers] if kind == "bit_bool" else numbers, t)
        if kind == "binary":
            return pa.array([None if v is None else bytes(v) for v in values], t)
        if kind == "timestamp_utc":
            return pa.array([None if v is None else v.replace(tzinfo=UTC) for v in values], t)
        if kind == "timestamp_tz":
            return pa.array([None if v is None else v.astimezone(UTC) for v in values], t)
        if kind == "time_of_day":
            return pa.array([_time_of_day(v, field.name) for v in values], t)
        if kind == "seconds":
            return pa.array([None if v is None else v.total_seconds() for v in values], t)
        return pa.array(values, t)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, AttributeError) as e:
        raise ValidationError(
            f"column {field.name!r}: a value does not fit its {kind} type ({e})",
            hint="cast the column to one type in SQL",
        ) from e


def _mixed(values: list[Any]) -> bool:
    return any(v is not None and not isinstance(v, str) for v in values)


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8")
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)


def _time_of_day(value: Any, name: str) -> time | None:
    """MySQL's TIME comes as a timedelta; one outside a day is a duration, not a time of day."""
    if value is None or isinstance(value, time):
        return value
    seconds = value.total_seconds()
    if not 0 <= seconds < 86400:
        raise ValidationError(f"column {name!r}: TIME value {value} is not a time of day",
                              hint="cast it in SQL: time_to_sec(col) for seconds, or cast(col as char)")
    moment: datetime = datetime.min + value
    return moment.time()
