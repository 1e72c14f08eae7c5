"""The SQL of the warehouse-side diff, per engine: row hashes, digests and scratch tables.

A row hash is the MD5 of one text that spells out every value with its type and length:

    <id> then, per column in name order: <name>=<tag><length>:<text>   (or <name>=~ for NULL)

- NULL-safe: each value is wrapped in ``coalesce(…, '~')``, so a NULL never turns the whole
  concatenation NULL (``CONCAT`` and ``||`` do that in Snowflake, BigQuery and Redshift);
- type-aware: the tag says what kind of value it is, so ``'5'`` (s1:5) ≠ ``5`` (i1:5);
- unambiguous: the length prefix keeps ``('ab','cd')`` apart from ``('a','bcd')`` (the trap of
  chaining Redshift's ``FNV_HASH``); NULL is ``~`` without a tag, never an empty text (the
  trap of Postgres' ``ROW(…)::text``);
- stable: timestamps are hashed at the millisecond, the precision a call sends them at (a change
  below it sends nothing in local mode either), as epoch milliseconds or a fixed ``to_char``
  pattern in the pinned UTC zone (no date style involved), floats through the engine's shortest round-trip text, and each session pins its
  time zone and float formatting besides (``session_settings``).

``ALGORITHM`` names the recipe; a snapshot records the one that wrote it, and a run that meets
another one rehashes the snapshot instead of resending (see the package docstring). A result's
*digest* is the sum of its rows' hashes' first 60 bits, as an exact number: equal digests and
row counts mean the same (id, hash) rows, without a join.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from traits.pipeline.types import Column

#: bumped when any engine's hash text changes (v3: a decimal is hashed as a number unless
#: ``settings.decimals: string`` sends its text)
RECIPE = "v3"

_TAGS = {
    "string": "s", "integer": "i", "float": "f", "decimal": "d", "boolean": "b", "date": "D",
    "timestamp": "t", "time": "T", "interval": "I", "bytes": "x", "json": "j", "nested": "n", "null": "0",
}
#: the tag of a decimal hashed as a number (its text without trailing zeros): "d" is its exact text
NUMBER_TAG = "N"


@dataclass(frozen=True)
class Dialect:
    """How one engine spells the parts of the hash and the bookkeeping statements."""

    name: str
    text_type: str = "varchar"
    #: ``create <scratch> table``: tables that live as long as one run (no WAL where it is optional)
    scratch_table: str = "table"
    quote_char: str = '"'

    @property
    def algorithm(self) -> str:
        return f"{self.name}-md5-{RECIPE}"

    @property
    def hash_type(self) -> str:
        """The SQL type of a row hash."""
        return self.text_type

    # -- names -------------------------------------------------------------------------------
    def quote(self, ident: str) -> str:
        q = self.quote_char
        return q + ident.replace(q, q + q) + q

    def table(self, schema: str, name: str) -> str:
        return f"{self.quote(schema)}.{self.quote(name)}"

    # -- values ------------------------------------------------------------------------------
    def as_text(self, x: str) -> str:
        return f"cast({x} as {self.text_type})"

    def value_text(self, column: Column, *, exact_decimals: bool = False) -> str | None:
        """The text a value is hashed as, or None for a column that is always NULL.

        A decimal is its text at its scale when that text is what a call sends
        (``exact_decimals``: ``settings.decimals: string``), else the number, whatever its
        scale: 1.50 and 1.5 send the same JSON number, as local mode judges them.
        """
        x = self.quote(column.name)
        match column.category:
            case "null":
                return None
            case "boolean":
                return f"case when {x} then 't' when not {x} then 'f' end"
            case "float":
                return self.float_text(x)
            case "decimal":
                return self.decimal_text(x) if exact_decimals else self.decimal_number_text(x)
            case "date":
                return self.date_text(x)
            case "timestamp":
                return self.timestamp_text(x)
            case "interval":
                return self.interval_text(x)
            case "bytes":
                return self.bytes_text(x)
            case "json" | "nested":
                return self.json_text(x)
            case _:
                return self.as_text(x)

    def float_text(self, x: str) -> str:
        return self.as_text(f"cast({x} as double precision)")

    def decimal_text(self, x: str) -> str:
        """A decimal's text at its scale (1.50 at scale 2)."""
        return self.as_text(x)

    def decimal_number_text(self, x: str) -> str:
        """A decimal's text without trailing zeros (1.50 and 1.5 alike): a number's one spelling,
        exact (a cast to a float would make nearby large values alike)."""
        t = self.decimal_text(x)
        return f"case when {t} like '%.%' then rtrim(rtrim({t}, '0'), '.') else {t} end"

    def date_text(self, x: str) -> str:
        return self.as_text(x)

    def timestamp_text(self, x: str) -> str:
        # (Redshift's extract(epoch) of a timestamp is a whole number of seconds)
        return f"to_char({x}, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')"

    def interval_text(self, x: str) -> str:
        return self.as_text(f"extract(epoch from {x})")

    def bytes_text(self, x: str) -> str:
        return f"encode({x}, 'hex')"

    def json_text(self, x: str) -> str:
        return self.as_text(x)

    def length(self, x: str) -> str:
        return f"length({x})"

    def md5(self, x: str) -> str:
        return f"md5({x})"

    def concat(self, parts: list[str]) -> str:
        return " || ".join(parts)

    def piece(self, name: str, column: Column, *, exact_decimals: bool = False) -> str:
        """``name=<tag><length>:<text>``, or ``name=~`` for NULL."""
        text = self.value_text(column, exact_decimals=exact_decimals)
        empty = _literal(f"{name}=~")
        if text is None:
            return empty
        number = column.category == "decimal" and not exact_decimals
        tag = _literal(f"{name}={NUMBER_TAG if number else _TAGS.get(str(column.category), '?')}")
        colon = "':'"
        return f"coalesce({self.concat([tag, self.as_text(self.length(text)), colon, text])}, {empty})"

    def row_hash(self, id_text: str, uid: Column | None, traits: list[Column], *, exact_decimals: bool = False) -> str:
        """SQL for a row's hash, over the result's own columns (and its id as text).

        ``exact_decimals``: decimals are sent as their text (``settings.decimals: string``).
        """
        colon = "':'"
        parts = [f"coalesce({self.concat([self.as_text(self.length(id_text)), colon, id_text])}, '~')"]
        if uid is not None:
            parts.append(self.piece("@user_id", uid))
        parts += [self.piece(c.name, c, exact_decimals=exact_decimals) for c in sorted(traits, key=lambda c: c.name)]
        return self.md5(self.concat(parts))

    def id_text(self, column: Column) -> str:
        """An identity value as the text it is sent as; empty counts as missing (like local mode)."""
        return f"nullif({self.as_text(self.quote(column.name))}, '')"

    def digest_part(self, row_hash: str) -> str:
        """The first 60 bits of a row hash (hex text) as an integer; a digest sums these."""
        return f"cast(('x' || substr({row_hash}, 1, 15)) as bit(60))::bigint"

    def not_finite(self, column: Column) -> str:
        """SQL true when a value is NaN or ±Infinity."""
        x = self.quote(column.name)
        return f"{x} in ('NaN', 'Infinity', '-Infinity')"

    # -- sessions ----------------------------------------------------------------------------
    def session_settings(self) -> list[str]:
        return []


class PostgresDialect(Dialect):
    """Postgres 14 and later hash a row natively: ``hash_record_extended`` over a ``ROW`` of the
    typed values, each hashed by its type's own extended hash (the one hash partitioning uses,
    so it is stable across versions by necessity). It is NULL-safe, needs no text, and is
    type-aware as equality is: int4 5 and int8 5 hash alike, numeric 1.50 and 1.5 too, ``'5'``
    and ``5`` do not; ``json`` (which has no hash) is hashed as ``jsonb``, timestamps to the
    millisecond (what a call carries), a numeric as its text where that is what a call sends
    (``settings.decimals: string``: 1.50 and 1.5 differ there). The sorted column
    names are part of the row, so a renamed column counts as a change. A 64-bit hash, summed
    exactly for the digest; about a quarter of the cost of reading the result once.
    """

    @property
    def algorithm(self) -> str:
        return f"{self.name}-hash_record-{RECIPE}"

    @property
    def hash_type(self) -> str:
        return "bigint"

    def row_hash(self, id_text: str, uid: Column | None, traits: list[Column], *, exact_decimals: bool = False) -> str:
        columns = ([uid] if uid is not None else []) + sorted(traits, key=lambda c: c.name)
        names = _literal(",".join(c.name for c in columns))
        values = [self._hashable(c, exact_decimals=exact_decimals) for c in columns]
        return f"hash_record_extended(row({id_text}, cast({names} as text), {', '.join(values)}), 0)"

    def _hashable(self, column: Column, *, exact_decimals: bool) -> str:
        x = self.quote(column.name)
        if column.category == "decimal" and exact_decimals:
            return self.decimal_text(x)
        if column.category == "json":
            return f"to_jsonb({x})"
        if column.category == "timestamp":
            return f"date_trunc('milliseconds', {x})"  # what a call carries, and local mode compares
        if column.category == "null":
            return "cast(null as text)"
        return x

    def digest_part(self, row_hash: str) -> str:
        return row_hash

    def json_text(self, x: str) -> str:
        # to_jsonb takes json, jsonb, arrays and rows alike (an int[] has no cast to jsonb)
        return self.as_text(f"to_jsonb({x})")

    def not_finite(self, column: Column) -> str:
        x = self.quote(column.name)
        kind = "numeric" if column.category == "decimal" else "double precision"
        return f"{x} in (cast('NaN' as {kind}), cast('Infinity' as {kind}), cast('-Infinity' as {kind}))"

    def session_settings(self) -> list[str]:
        # work_mem: the diff's hash joins and the duplicate check over millions of rows stay in
        # memory instead of spilling in many batches (per operation, for this session only)
        return ["set time zone 'UTC'", "set datestyle = 'ISO, YMD'", "set extra_float_digits = 1", "set intervalstyle = 'postgres'",
                "set work_mem = '256MB'"]


class PostgresMd5Dialect(PostgresDialect):
    """Postgres before 14 (no ``hash_record_extended``): the MD5 recipe."""

    @property
    def algorithm(self) -> str:
        return f"{self.name}-md5-{RECIPE}"

    @property
    def hash_type(self) -> str:
        return self.text_type

    def row_hash(self, id_text: str, uid: Column | None, traits: list[Column], *, exact_decimals: bool = False) -> str:
        return Dialect.row_hash(self, id_text, uid, traits, exact_decimals=exact_decimals)

    def digest_part(self, row_hash: str) -> str:
        return Dialect.digest_part(self, row_hash)


class RedshiftDialect(Dialect):
    """Redshift: no ``bit`` casts; ``strtol`` reads the hex; text is
    ``varchar(65535)`` (a bare ``varchar`` is 256 bytes, and a longer hash text would be cut);
    SUPER is spelled out by ``json_serialize`` (a cast to varchar only takes scalars)."""

    def json_text(self, x: str) -> str:
        return f"json_serialize({x})"

    def bytes_text(self, x: str) -> str:
        return f"to_hex({x})"

    def digest_part(self, row_hash: str) -> str:
        # numeric: Redshift's sum of a bigint is a bigint, which 60-bit parts overflow at 8 rows
        return f"cast(strtol(substring({row_hash}, 1, 15), 16) as numeric(38, 0))"

    def session_settings(self) -> list[str]:
        # extra_float_digits 2 (Redshift's maximum): 17 significant digits, which tell every
        # double apart (1 gives 16, which do not)
        return ["set timezone to 'UTC'", "set datestyle to 'ISO, YMD'", "set extra_float_digits to 2"]


class DuckDBDialect(Dialect):
    def float_text(self, x: str) -> str:
        return self.as_text(f"cast({x} as double)")

    def timestamp_text(self, x: str) -> str:
        return self.as_text(f"epoch_ms({x})")

    def interval_text(self, x: str) -> str:
        return self.as_text(f"epoch({x})")

    def bytes_text(self, x: str) -> str:
        return f"hex({x})"

    def json_text(self, x: str) -> str:
        return self.as_text(f"to_json({x})")

    def digest_part(self, row_hash: str) -> str:
        return f"cast(('0x' || substr({row_hash}, 1, 15)) as bigint)"

    def not_finite(self, column: Column) -> str:
        x = self.quote(column.name)
        return f"not isfinite(try_cast({x} as double))" if column.duck_type.upper() == "VARCHAR" else f"not isfinite({x})"

    def session_settings(self) -> list[str]:
        return ["set timezone = 'UTC'"]


class SnowflakeDialect(Dialect):
    """Snowflake folds unquoted names to upper case, and the warehouse module shows such a name
    lower-cased (``USER_ID`` → ``user_id``): a lower-case name is quoted as its folded form, so
    the bookkeeping SQL finds a result's columns however the trait's SQL spelled them. (A column
    the SQL quoted in lower case, ``"user_id"``, is the one spelling this cannot reach.)"""

    def quote(self, ident: str) -> str:
        return super().quote(snowflake_name(ident))

    def float_text(self, x: str) -> str:
        return f"to_varchar(cast({x} as double), 'TME')"

    def timestamp_text(self, x: str) -> str:
        return self.as_text(f"date_part(epoch_millisecond, {x})")

    def interval_text(self, x: str) -> str:
        return self.as_text(x)

    def bytes_text(self, x: str) -> str:
        return f"hex_encode({x})"

    def json_text(self, x: str) -> str:
        return f"to_json({x})"

    def digest_part(self, row_hash: str) -> str:
        # the 15 hex digits by place value: what to_number(…, 'XXXXXXXXXXXXXXX') reads, in
        # functions the stand-in has too
        digits = (f"(position(substr({row_hash}, {i + 1}, 1) in '0123456789abcdef') - 1) * {16 ** (14 - i)}" for i in range(15))
        return "(" + " + ".join(digits) + ")"

    def not_finite(self, column: Column) -> str:
        x = self.quote(column.name)
        return f"{x} in ('NaN'::double, 'inf'::double, '-inf'::double)"

    def session_settings(self) -> list[str]:
        return []  # TIMEZONE is a login parameter of the session (session_snowflake)


class BigQueryDialect(Dialect):
    """BigQuery: backquoted names, STRING (set in ``DIALECTS``: a subclass's own field defaults
    would not reach the dataclass's ``__init__``)."""

    def table(self, schema: str, name: str) -> str:
        return f"`{schema}`.`{name}`"

    def float_text(self, x: str) -> str:
        return self.as_text(f"cast({x} as float64)")

    def timestamp_text(self, x: str) -> str:
        return self.as_text(f"unix_millis(timestamp({x}))")

    def interval_text(self, x: str) -> str:
        return self.as_text(x)

    def bytes_text(self, x: str) -> str:
        return f"to_hex({x})"

    def json_text(self, x: str) -> str:
        return f"to_json_string({x})"

    def md5(self, x: str) -> str:
        return f"to_hex(md5({x}))"

    def digest_part(self, row_hash: str) -> str:
        # numeric: BigQuery's sum of int64 fails on overflow, which 60-bit parts reach at 8 rows
        return f"cast(cast(concat('0x', substr({row_hash}, 1, 15)) as int64) as numeric(29, 0))"

    def not_finite(self, column: Column) -> str:
        x = self.quote(column.name)
        return f"(is_nan({x}) or is_inf({x}))"


def snowflake_name(ident: str) -> str:
    """The name Snowflake stores for ``ident`` written unquoted, when it is a plain lower-case name."""
    return ident.upper() if _PLAIN_LOWER.match(ident) else ident


_PLAIN_LOWER = re.compile(r"^[a-z_][a-z0-9_$]*$")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


DIALECTS: dict[str, Dialect] = {
    "postgres": PostgresDialect("postgres", text_type="text", scratch_table="unlogged table"),
    "postgres13": PostgresMd5Dialect("postgres", text_type="text", scratch_table="unlogged table"),
    "redshift": RedshiftDialect("redshift", text_type="varchar(65535)"),
    "duckdb": DuckDBDialect("duckdb"),
    "snowflake": SnowflakeDialect("snowflake", scratch_table="transient table"),
    "bigquery": BigQueryDialect("bigquery", text_type="string", quote_char="`"),
}


def dialect_for(engine: str) -> Dialect:
    return DIALECTS[engine]
