"""The mapping from warehouse column types to JSON values, the same for every engine.

Each staged column becomes one SQL expression for the columnar engine that yields the JSON
value to send. ``canonical_json`` assembles them, keys sorted, into the canonical JSON text
of a row: what is sent and what the snapshot keeps.

Rows are compared by ``row_hash``: a hash of each value normalized to its JSON meaning (so
an ``int4`` 5 and an ``int8`` 5 are equal, ``'5'`` and ``5`` are not, and column order does
not matter), computed on typed values without building any text, which is what keeps an
unchanged re-run cheap. The hash function is DuckDB's; every snapshot file records the
``HASH_CANARY`` of the engine that wrote it, and rows from a file whose canary differs (a
DuckDB upgrade changed the hash) are rehashed from their stored JSON (``rehash_sql``).

| warehouse type                         | JSON value                                    |
|----------------------------------------|-----------------------------------------------|
| text, varchar, char, enum, uuid        | string                                        |
| boolean                                | true / false                                  |
| integers of any size                   | number (exact)                                |
| float, double                          | number; NaN/±Infinity are errors unless       |
|                                        | ``allow_non_finite`` (then null)              |
| decimal / numeric                      | number, or a string of exact digits with      |
|                                        | ``decimals: string``                          |
| date                                   | "YYYY-MM-DD"                                  |
| timestamp with or without time zone    | "YYYY-MM-DDTHH:MM:SS.sssZ" in UTC (a value    |
|                                        | without a zone is taken as UTC)               |
| time                                   | "HH:MM:SS[.ffffff]"                           |
| interval                               | number of seconds                             |
| bytes                                  | base64 string                                 |
| json, variant, struct, list, map       | nested JSON, an error unless ``allow_nested`` |
| null                                   | null                                          |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from traits.columnar import quote_ident

Category = Literal["string", "boolean", "integer", "float", "decimal", "date", "timestamp", "time", "interval", "bytes", "nested", "json", "null"]

ISO_TIMESTAMP = "%Y-%m-%dT%H:%M:%S.%gZ"


@dataclass(frozen=True)
class Column:
    name: str
    duck_type: str
    category: Category | None  # None: a type with no JSON mapping


def categorize(duck_type: str, marker: str | None = None) -> Category | None:
    """The JSON category of a staged column; ``marker`` is the warehouse's note on a text column."""
    t = duck_type.upper()
    if marker == "json" or t == "JSON":
        return "json"
    if marker == "decimal":
        return "decimal"
    if t.endswith("[]") or t.startswith(("STRUCT", "MAP", "UNION")) or (t.endswith("]") and "[" in t):
        return "nested"
    if t.startswith("DECIMAL"):
        return "decimal"
    if t in ("VARCHAR", "UUID", "BIT") or t.startswith("ENUM"):
        return "string"
    if t == "BOOLEAN":
        return "boolean"
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"):
        return "integer"
    if t in ("FLOAT", "DOUBLE"):
        return "float"
    if t == "DATE":
        return "date"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    if t.startswith("TIME"):
        return "time"
    if t == "INTERVAL":
        return "interval"
    if t == "BLOB":
        return "bytes"
    if t == "NULL":
        return "null"
    return None


def value_sql(column: Column, *, decimals: str, allow_non_finite: bool) -> str:
    """The SQL expression for the JSON value of ``column``."""
    x = quote_ident(column.name)
    match column.category:
        case "string":
            return f"cast({x} as varchar)"
        case "float":
            value = f"cast(cast({x} as varchar) as double)" if column.duck_type.upper() == "FLOAT" else x
            return f"case when isfinite({x}) then {value} end" if allow_non_finite else value
        case "decimal":
            value = f"cast({x} as varchar)" if decimals == "string" else f"cast({x} as double)"
            return _finite_or_null(column, value) if allow_non_finite else value
        case "date":
            return f"strftime({x}, '%Y-%m-%d')"
        case "timestamp":
            if "ZONE" not in column.duck_type.upper():
                return f"strftime(cast({x} as timestamp), '{ISO_TIMESTAMP}')"
            # the same text (the engine's time zone is UTC) as strftime of the timestamptz, at half
            # its cost: a plain timestamp is formatted without the time-zone library; ±infinity,
            # which make_timestamp cannot hold, is formatted as it is
            return (f"case when isfinite({x}) then strftime(make_timestamp(epoch_us({x})), '{ISO_TIMESTAMP}') "
                    f"else strftime({x}, '{ISO_TIMESTAMP}') end")
        case "time":
            return f"cast({x} as varchar)"
        case "interval":
            return f"epoch({x})"
        case "bytes":
            return f"to_base64({x})"
        case "json":
            return f"json({x})"
        case "null":
            return "cast(null as varchar)"
        case _:
            return x


def finite_operand(column: Column, x: str | None = None) -> str:
    """The double ``isfinite`` is asked about for a column that may hold NaN or ±Infinity."""
    x = x or quote_ident(column.name)
    if column.category == "decimal":  # a numeric handed over as text ('NaN', 'Infinity', '-Infinity')
        return f"try_cast({x} as double)"
    return x


def _finite_or_null(column: Column, value: str, x: str | None = None) -> str:
    """``value``, or null where a numeric held as text is NaN or ±Infinity (``allow_non_finite``)."""
    if column.duck_type.upper() != "VARCHAR":
        return value  # a real decimal type holds only finite numbers
    return f"case when isfinite({finite_operand(column, x)}) then {value} end"


def id_sql(column: Column) -> str:
    """Identity values are sent as strings; empty strings count as missing."""
    return f"nullif(cast({quote_ident(column.name)} as varchar), '')"


def canonical_json(columns: list[Column], *, decimals: str, allow_non_finite: bool) -> str:
    """SQL for the canonical JSON object of a row's traits: keys sorted, values mapped."""
    fields = ", ".join(
        f"{quote_ident(c.name)} := {value_sql(c, decimals=decimals, allow_non_finite=allow_non_finite)}"
        for c in sorted(columns, key=lambda c: c.name)
    )
    return f"cast(to_json(struct_pack({fields})) as varchar)"



def normalized_sql(category: Category | None, x: str, duck_type: str, *, decimals: str, allow_non_finite: bool) -> str:
    """``x`` as the typed value its JSON form stands for (what ``snapshot_format.row_hash`` hashes)."""
    match category:
        case "string" | "time":
            return f"cast({x} as varchar)"
        case "integer":
            return f"cast({x} as hugeint)"
        case "float":
            value = f"cast(cast({x} as varchar) as double)" if duck_type.upper() == "FLOAT" else f"cast({x} as double)"
            return f"case when isfinite({x}) then {value} end" if allow_non_finite else value
        case "decimal":
            value = f"cast({x} as varchar)" if decimals == "string" else f"cast({x} as double)"
            return _finite_or_null(Column("", duck_type, category), value, x) if allow_non_finite else value
        case "date":
            return f"cast({x} as date)"
        case "timestamp":  # milliseconds since the epoch: what the JSON form keeps
            return f"epoch_us(cast({x} as timestamptz)) // 1000"
        case "interval":
            return f"cast(epoch({x}) as double)"
        case "bytes":
            return f"cast({x} as blob)"
        case "json":
            return f"cast(json({x}) as varchar)"
        case "nested":
            return f"cast(to_json({x}) as varchar)"
        case "boolean":
            return x
        case _:
            return "cast(null as varchar)"


def from_json_sql(column: Column, v: str, *, decimals: str) -> str:
    """The same normalized value, read back from the canonical JSON ``v`` (a snapshot's ``values_json``)."""
    path = "'$.\"" + column.name.replace("'", "''").replace('"', '\\"') + "\"'"
    text = f"json_extract_string({v}, {path})"
    match column.category:
        case "string" | "time":
            return text
        case "integer":
            return f"try_cast({text} as hugeint)"
        case "float" | "interval":
            return f"try_cast({text} as double)"
        case "decimal":
            return text if decimals == "string" else f"try_cast({text} as double)"
        case "date":
            return f"try_cast({text} as date)"
        case "timestamp":
            return f"epoch_us(try_cast({text} as timestamptz)) // 1000"
        case "bytes":
            return f"try(from_base64({text}))"
        case "json" | "nested":
            return f"cast(json_extract({v}, {path}) as varchar)"
        case "boolean":
            return f"try_cast({text} as boolean)"
        case _:
            return "cast(null as varchar)"
