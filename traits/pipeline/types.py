"""The mapping from warehouse column types to JSON values, the same for every engine.

Each staged column becomes one SQL expression for the columnar engine that yields the JSON
value to send. ``canonical_json`` assembles them, keys sorted, into the canonical JSON text
of a row: what is sent, what is hashed, and what the snapshot keeps, so two results compare
by value and type, not by the text the warehouse printed.

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
            return f"cast({x} as varchar)" if decimals == "string" else f"cast({x} as double)"
        case "date":
            return f"strftime({x}, '%Y-%m-%d')"
        case "timestamp":
            return f"strftime(cast({x} as timestamp), '{ISO_TIMESTAMP}')" if "ZONE" not in column.duck_type.upper() else f"strftime({x}, '{ISO_TIMESTAMP}')"
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


def row_hash(v_sql: str, uid_sql: str | None) -> str:
    """A stable 64-bit hash of what a call carries (the traits, and an account's user id)."""
    if uid_sql is None:
        return f"md5_number_lower({v_sql})"
    return f"md5_number_lower(coalesce({uid_sql}, '') || chr(0) || {v_sql})"
