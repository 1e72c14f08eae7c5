"""Validate: every rule of the result, checked on the whole staged result before anything is sent.

``check_shape`` checks the columns (on the first batch, so a wrong query fails fast). The
``Fingerprinter`` hashes each batch as it is staged, adding each row's hash (which the diff
joins against each snapshot) and non-finite check to the staged file; ``check_rows`` checks
the row rules over them (null and duplicate ids, non-finite numbers). The size of each call
is checked by the diff (``check_sizes``) on the rows it would send, still before anything
is sent: an unchanged row was sent, at the same size, before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from traits.columnar import sql_path
from traits.errors import ValidationError
from traits.pipeline.types import Column, canonical_json, categorize, finite_operand, id_sql
from traits.snapshot_format import DIGEST_MODULUS, STAGED_NON_FINITE, STAGED_ROW_HASH, pair_hash_sql, rehash_sql, row_hash, source

if TYPE_CHECKING:
    import duckdb

    from traits.config.models import Settings, Trait

#: room left in a call for everything but the traits: ids, messageId, context, timestamp
ENVELOPE_BYTES = 1_024
EXAMPLES = 5


@dataclass(frozen=True)
class Shape:
    """The columns of a valid result and the SQL that maps its rows to JSON."""

    id_column: Column
    uid_column: Column | None
    traits: list[Column]
    v_sql: str
    id_sql: str
    uid_sql: str | None
    h_sql: str
    #: recomputes ``row_hash`` from a snapshot row's ``values_json`` and ``user_id`` (after the hash function changed)
    rehash_sql: str


def check_shape(name: str, trait: Trait, settings: Settings, schema: pa.Schema, duck_types: dict[str, str]) -> Shape:
    columns = [
        Column(f.name, duck_types[f.name], categorize(duck_types[f.name], _marker(f)))
        for f in schema
    ]
    by_name = {c.name.lower(): c for c in columns}
    wanted = trait.identity_column
    where = f"trait {name}"
    if wanted not in by_name:
        if "anonymous_id" in by_name:
            raise ValidationError(
                f"{where}: the result has anonymous_id but no {wanted}",
                hint=f"SQL Traits are keyed by known {'users' if trait.kind == 'user' else 'accounts'}: return a {wanted} column "
                "(anonymous visitors cannot be looked up later)",
            )
        other = "group_id" if wanted == "user_id" else "user_id"
        extra = f" (it has {other}: is kind {'account' if wanted == 'user_id' else 'user'} meant?)" if other in by_name and wanted == "user_id" else ""
        raise ValidationError(
            f"{where}: the result has no {wanted} column{extra}",
            hint=f"a kind: {trait.kind} trait must return its identity as a column named {wanted}",
        )
    if trait.kind == "user" and "group_id" in by_name:
        raise ValidationError(
            f"{where}: a user trait returned group_id as well as user_id",
            hint="return exactly one identity column, or use kind: account",
        )
    if len(columns) > settings.max_columns:
        raise ValidationError(
            f"{where}: the result has {len(columns)} columns, more than max_columns = {settings.max_columns} (ids included)",
            hint="drop columns, split the trait in two, or raise settings.max_columns",
        )
    id_column = by_name[wanted]
    uid_column = by_name.get("user_id") if trait.kind == "account" else None
    for ident in (id_column, uid_column):
        if ident is not None and ident.category not in ("string", "integer"):
            raise ValidationError(
                f"{where}: column {ident.name} is {ident.duck_type}; identity values must be text or integers",
                hint=f"cast it in SQL, e.g. cast({ident.name} as varchar)",
            )
    ids = {id_column.name, uid_column.name if uid_column else None}
    traits = [c for c in columns if c.name not in ids]
    if not traits:
        raise ValidationError(f"{where}: the result has no trait column besides the ids", hint="select at least one trait value")
    for column in traits:
        if column.category is None:
            raise ValidationError(
                f"{where}: column {column.name} has type {column.duck_type}, which has no JSON form",
                hint="cast it in SQL to text, a number, a boolean or a timestamp",
            )
        if column.category in ("nested", "json") and not settings.allow_nested:
            raise ValidationError(
                f"{where}: column {column.name} holds nested values ({column.duck_type})",
                hint="flatten it in SQL, or set settings.allow_nested: true to send it as JSON",
            )
    v_sql = canonical_json(traits, decimals=settings.decimals, allow_non_finite=settings.allow_non_finite)
    uid_sql = id_sql(uid_column) if uid_column else None
    h_sql = row_hash(traits, uid_sql, decimals=settings.decimals, allow_non_finite=settings.allow_non_finite)
    return Shape(id_column, uid_column, traits, v_sql, id_sql(id_column), uid_sql, h_sql, rehash_sql(traits, decimals=settings.decimals))


def _marker(field: pa.Field) -> str | None:
    if isinstance(field.type, pa.ExtensionType) and field.type.extension_name == "arrow.json":
        return "json"
    if field.metadata and b"sql_traits.type" in field.metadata:
        return str(field.metadata[b"sql_traits.type"].decode())
    return None


def duck_types(con: duckdb.DuckDBPyConnection, staged: Path) -> dict[str, str]:
    rows = con.execute(f"describe select * from read_parquet('{sql_path(staged)}')").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def non_finite_columns(shape: Shape) -> list[Column]:
    """Columns that can hold NaN or ±Infinity: floats, and numerics a driver handed over as text."""
    return [c for c in shape.traits if c.category == "float" or (c.category == "decimal" and c.duck_type.upper() == "VARCHAR")]


def _bad_sql(shape: Shape, settings: Settings) -> str:
    """SQL true for a row holding NaN or ±Infinity where they are not allowed."""
    if settings.allow_non_finite:
        return "false"
    return " or ".join(f"not isfinite({finite_operand(c)})" for c in non_finite_columns(shape)) or "false"




class Fingerprinter:
    """Checks the columns on the first batch and hashes every batch while it is staged.

    Each batch leaves with two more columns: its rows' hashes and whether a row breaks the
    non-finite rule. The hashing runs on the main thread while the read-ahead thread waits
    on the warehouse, so on a small machine it costs next to nothing.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, name: str, trait: Trait, settings: Settings) -> None:
        self.con = con
        self.name = name
        self.trait = trait
        self.settings = settings
        self.shape: Shape | None = None
        self._sql = ""
        # what check_rows would count, counted batch by batch instead of in a second pass
        self.rows = self.null_ids = self.bad_rows = self.digest = 0

    def add(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        self.con.register("sql_traits_batch", pa.Table.from_batches([batch]))
        try:
            if self.shape is None:
                types = {str(r[0]): str(r[1]) for r in self.con.execute("describe select * from sql_traits_batch").fetchall()}
                self.shape = check_shape(self.name, self.trait, self.settings, batch.schema, types)
                bad = _bad_sql(self.shape, self.settings)
                self._sql = f"""select row_hash, non_finite, id is null as missing, {pair_hash_sql()} as pair from (
                    select {self.shape.id_sql} as id, {self.shape.h_sql} as row_hash, ({bad}) as non_finite from sql_traits_batch)"""
            added = self._in_order(self._sql)
            self.con.register("sql_traits_added", added)
            bad_rows, null_ids, digest = self.con.execute(
                "select count(*) filter (where non_finite), count(*) filter (where missing), coalesce(sum(pair), 0) from sql_traits_added"
            ).fetchall()[0]
        finally:
            self.con.unregister("sql_traits_batch")
            self.con.unregister("sql_traits_added")
        self.rows += batch.num_rows
        self.bad_rows += int(bad_rows)
        self.null_ids += int(null_ids)
        self.digest = (self.digest + int(digest)) % DIGEST_MODULUS
        columns = [*batch.columns, added.column(0).combine_chunks(), added.column(1).combine_chunks()]
        # the query's fields are kept whole, markers included: the staged file is what a resumed
        # run reads its types from, so it must say exactly what the first batch said
        schema = pa.schema([*batch.schema, pa.field(STAGED_ROW_HASH, columns[-2].type), pa.field(STAGED_NON_FINITE, columns[-1].type)])
        return pa.RecordBatch.from_arrays(columns, schema=schema)

    def _in_order(self, sql: str) -> pa.Table:
        """The result of ``sql`` over the batch, its rows in the batch's order.

        The hashes are put beside the batch's own columns by position, so the order is what
        ties each hash to its row. The engine's connections may reorder rows
        (``preserve_insertion_order`` off, ``columnar.connect``), and do once a batch is large
        enough to be scanned by several threads: a row would be staged with another's hash.
        """
        self.con.execute("SET preserve_insertion_order = true")
        try:
            return self.con.sql(sql).to_arrow_table()
        finally:
            self.con.execute("SET preserve_insertion_order = false")

    def finish(self, con: duckdb.DuckDBPyConnection, staged: Path) -> tuple[Shape, RowSummary]:
        """The shape of the result, and its row rules checked (after at least one batch)."""
        assert self.shape is not None, "finish() after at least one batch"
        _report(con, self.name, self.shape, self.settings, staged, self.null_ids, self.bad_rows)
        return self.shape, RowSummary(self.rows, self.digest)


@dataclass(frozen=True)
class RowSummary:
    """What one pass over the staged ids found: the row count and its digest (``snapshot_format``)."""

    rows: int
    #: equal to a snapshot's only if they hold the same rows
    digest: int


def check_rows(con: duckdb.DuckDBPyConnection, name: str, shape: Shape, settings: Settings, staged: Path) -> RowSummary:
    """The row rules that need no grouping (null or empty ids, non-finite numbers), and the digest.

    Unique ids are checked by ``check_unique``, which the run skips when a snapshot's digest
    shows the result holds exactly the rows the snapshot holds (whose ids are unique).
    """
    fp = f"(select {shape.id_sql} as id, {STAGED_ROW_HASH} as row_hash, {STAGED_NON_FINITE} as non_finite from {source(con, staged, 'staged')})"
    total, null_ids, bad_rows, digest = con.execute(
        f"select count(*), count(*) filter (where id is null), count(*) filter (where non_finite), "
        f"coalesce(sum({pair_hash_sql()}), 0) % {DIGEST_MODULUS} from {fp}"
    ).fetchone() or (0, 0, 0, 0)
    _report(con, name, shape, settings, staged, int(null_ids), int(bad_rows))
    return RowSummary(int(total), int(digest))


def _report(con: duckdb.DuckDBPyConnection, name: str, shape: Shape, settings: Settings, staged: Path, null_ids: int, bad_rows: int) -> None:
    """Fail with the first offending rows when ids are missing or numbers are not finite."""
    where = f"trait {name}"
    f = source(con, staged, "staged", file_row_number=True)
    if null_ids:
        rows = [str(r[0]) for r in con.execute(f"select file_row_number + 1 from {f} where {shape.id_sql} is null order by 1 limit {EXAMPLES}").fetchall()]
        raise ValidationError(
            f"{where}: {null_ids:,} row(s) have a null or empty {shape.id_column.name} (result rows {', '.join(rows)})",
            hint=f"filter them out in SQL: where {shape.id_column.name} is not null",
        )
    if bad_rows:
        bad = _bad_sql(shape, settings)
        ids = [str(r[0]) for r in con.execute(f"select {shape.id_sql} from {f} where {bad} order by file_row_number limit {EXAMPLES}").fetchall()]
        columns = ", ".join(c.name for c in non_finite_columns(shape))
        raise ValidationError(
            f"{where}: {bad_rows:,} row(s) hold NaN or Infinity in {columns} (ids {', '.join(ids)})",
            hint="fix them in SQL (e.g. nullif), or set settings.allow_non_finite: true to send them as null",
        )


#: the 64-bit hash of an id that ``check_unique`` counts before it groups the ids themselves
ID_HASH_SQL = "hash(id)"


def check_unique(con: duckdb.DuckDBPyConnection, name: str, shape: Shape, staged: Path) -> None:
    """No id appears twice (the count and the first offenders are reported)."""
    where = f"trait {name}"
    ids = f"(select {shape.id_sql} as id from {source(con, staged, 'staged')})"
    # distinct hashes mean distinct ids, and counting 64-bit hashes is cheaper than counting
    # the ids' text; only when two hashes meet (a duplicate, or at 10M ids a chance of about
    # one in 400,000) are the ids themselves grouped
    distinct, total = con.execute(f"select count(distinct {ID_HASH_SQL}), count(id) from {ids}").fetchone() or (0, 0)
    if distinct == total:
        return
    dupes = con.execute(
        f"select id, count(*) as c, count(*) over () as groups from {ids} group by id having count(*) > 1 order by c desc, id limit {EXAMPLES}"
    ).fetchall()
    if dupes:
        examples = ", ".join(f"{r[0]!r} ×{r[1]}" for r in dupes)
        raise ValidationError(
            f"{where}: {dupes[0][2]:,} {shape.id_column.name} value(s) appear more than once ({examples})",
            hint=f"return one row per {shape.id_column.name}: group by it or pick one row per id",
        )


#: the bytes of a change row's traits and ids that count toward its call's size (``check_sizes``)
CALL_SIZE_SQL = "strlen(coalesce(values_json, '')) + strlen(coalesce(user_id, '')) + 2 * strlen(id)"


def check_sizes(con: duckdb.DuckDBPyConnection, name: str, changes: Path, *, max_call_bytes: int, largest: int | None = None) -> None:
    """Every call to be sent fits: its traits and ids (a long id counts too) under the call limit less the envelope.

    The envelope (messageId, type, timestamp, context) is bounded by ``ENVELOPE_BYTES`` plus the
    trait's name, which the context carries. ``largest``, the largest row's size when it was
    measured as the file was written (``Differ.largest_call``), spares reading the file when it fits.
    """
    limit = max_call_bytes - ENVELOPE_BYTES - len(name.encode())
    if largest is not None and largest <= limit:
        return
    f = source(con, changes, "changes")
    size = CALL_SIZE_SQL
    big = con.execute(f"select id, {size} as n, count(*) over () from {f} where {size} > {limit} order by n desc limit {EXAMPLES}").fetchall()
    if big:
        raise ValidationError(
            f"trait {name}: {big[0][2]:,} row(s) are too large to send, over {limit:,} bytes of traits and ids "
            f"(largest: id {big[0][0]!r}, {big[0][1]:,} bytes)",
            hint="send fewer or shorter values per row",
        )
