"""The warehouse-side diff of one run: materialise, validate, diff, fetch the changes, fold.

``WarehouseDiffer`` speaks the same language as the local differ: for each destination it
writes the run's change file (``pipeline.diff``'s layout), so exits, sizes, the guard,
delivery and history are the same code in both modes. What differs is where the work is done:

1. ``prepare``: the result's columns come from the query with ``limit 0`` and are checked as
   in local mode. When every destination's warehouse snapshot is current (its lineage) and no
   full resync is asked for, one aggregate pass (row count, null ids, non-finite values, and
   the digest) decides: a result whose digest and count equal every snapshot's is unchanged,
   and nothing is written or fetched. Otherwise the result is materialised
   (``run_<run>_result``) and validated there: row cap, null and duplicate ids, non-finite
   values, with local mode's texts.
2. ``diff``: a full outer join with the destination's snapshot writes the changed ids
   (``run_<run>_changes_<key>``); the changes are fetched with their new values (exits with
   none) and the change file is built locally, the values before coming from the local
   store's snapshot (what the destination holds). A destination whose warehouse snapshot is
   not current is *reseeded*: its whole result is fetched once and diffed locally.
3. ``fold``: after the local commit, the snapshot advances by what was acknowledged
   (``bookkeeping.fold``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traits.bookkeeping.fold import SnapshotFold, SnapshotInfo, snapshot_info
from traits.bookkeeping.sessions import Session
from traits.bookkeeping.tables import (
    CHANGE,
    ID,
    NEW_HASH,
    OLD_HASH,
    ROW_HASH,
    changes_table,
    result_table,
    run_prefix,
)
from traits.columnar import sql_path
from traits.errors import ValidationError
from traits.pipeline.stage import checked_schema, stage
from traits.pipeline.validate import EXAMPLES, Shape, check_shape, non_finite_columns
from traits.snapshot_format import write_no_changes
from traits.state.base import warehouse_lineage_key as lineage_key
from traits.state.records import DestinationCounts
from traits.warehouses.base import limited, strip_sql

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from traits.config.models import Config
    from traits.state.base import StateStore

log = logging.getLogger("traits.bookkeeping")


@dataclass
class Fetched:
    """What left the warehouse in this run."""

    rows: int = 0
    bytes: int = 0

    def count(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        self.rows += batch.num_rows
        self.bytes += batch.nbytes
        return batch


@dataclass
class Prepared:
    shape: Shape
    rows: int
    #: the result is in ``run_<run>_result`` (False: it equals every snapshot, nothing to do)
    materialised: bool
    #: destinations whose warehouse snapshot is current
    current: dict[str, SnapshotInfo] = field(default_factory=dict)


class WarehouseDiffer:
    def __init__(self, config: Config, state: StateStore, name: str, run_id: str, run_dir: Path, session: Session,
                 con: duckdb.DuckDBPyConnection, fetched: Fetched) -> None:
        self.config = config
        self.state = state
        self.name = name
        self.trait = config.traits[name]
        self.run_id = run_id
        self.run_dir = run_dir
        self.session = session
        self.dialect = session.dialect
        self.con = con
        self.fetched = fetched
        self.result = session.table(result_table(run_id))
        self.prepared: Prepared | None = None
        #: destinations whose changes table this run has built (``_join``), with its full_resync
        self._joined: dict[str, bool] = {}

    # -- the schema's own tables -------------------------------------------------------------
    def ensure_schema(self) -> None:
        s = self.session
        text = self.dialect.text_type
        if not s.rows("select 1 from information_schema.schemata where schema_name = %s", (s.schema,)):
            s.execute(f"create schema {self.dialect.quote(s.schema)}")
        s.execute(
            f"""create table if not exists {s.table('snapshots')} (trait {text} not null, destination {text} not null,
                snapshot_table {text} not null, algorithm {text} not null, lineage {text} not null,
                row_count bigint not null, digest {text} not null, updated_at timestamp, primary key (trait, destination))"""
        )
        s.execute(f"create table if not exists {s.table('runs')} (run_id {text} primary key, trait {text} not null, started_at timestamp)")

    def register_run(self) -> None:
        """Drop what killed runs of this trait left, then note this run as having tables."""
        s = self.session
        for (run_id,) in s.rows(f"select run_id from {s.table('runs')} where trait = %s and run_id <> %s", (self.name, self.run_id)):
            self.drop_run_tables(str(run_id))
        if not s.rows(f"select 1 from {s.table('runs')} where run_id = %s", (self.run_id,)):
            s.execute(f"insert into {s.table('runs')} (run_id, trait, started_at) values (%s, %s, current_timestamp)", (self.run_id, self.name))

    def drop_run_tables(self, run_id: str) -> None:
        s = self.session
        for table in s.tables(run_prefix(run_id)):
            s.execute(f"drop table if exists {s.table(table)}")
        s.execute(f"delete from {s.table('runs')} where run_id = %s", (run_id,))

    def snapshot_info(self, destination: str) -> SnapshotInfo | None:
        return snapshot_info(self.session, self.name, destination)

    def current_snapshot(self, destination: str) -> SnapshotInfo | None:
        """The destination's warehouse snapshot if the local store vouches for it, else None."""
        info = self.snapshot_info(destination)
        if info is None or info.algorithm != self.dialect.algorithm:
            return None
        return info if self.state.get_value(lineage_key(self.name, destination)) == info.lineage else None

    # -- prepare -------------------------------------------------------------------------------
    def shape_of(self, sql: str) -> Shape:
        """The result's columns, from the query with ``limit 0``, checked as in local mode."""
        batches = self.session.warehouse.stream(sql, max_rows=-1)
        first = next(iter(batches))
        for _ in batches:
            pass
        return self._shape(checked_schema(first.schema, self.name))

    def _shape(self, schema: pa.Schema) -> Shape:
        import pyarrow as pa

        self.con.register("sql_traits_schema", pa.Table.from_batches([], schema=schema))
        try:
            types = {str(r[0]): str(r[1]) for r in self.con.execute("describe select * from sql_traits_schema").fetchall()}
        finally:
            self.con.unregister("sql_traits_schema")
        return check_shape(self.name, self.trait, self.config.settings, schema, types)

    def prepare(self, sql: str, *, full_resync: bool) -> Prepared:
        shape = self.shape_of(sql)
        max_rows = self.config.max_rows_for(self.name)
        current = {d: info for d in self.trait.destinations if (info := self.current_snapshot(d)) is not None}
        if not full_resync and self.trait.destinations and len(current) == len(self.trait.destinations):
            rows, digest = self._aggregate(sql, shape, max_rows)
            if all(info.rows == rows and info.digest == digest for info in current.values()):
                self.prepared = Prepared(shape, rows, materialised=False, current=current)
                return self.prepared
        rows, digest = self._materialise(sql, shape, max_rows)
        self.prepared = Prepared(shape, rows, materialised=True, current=current)
        first = next(iter(current.items()), None)
        if full_resync or first is None or not self._unique_by_digest(*first, rows, digest):
            self._check_unique(shape)
        return self.prepared

    def resume(self) -> Prepared | None:
        """The prepared state of a resumed run whose result is still materialised, else None."""
        if not self.session.tables(result_table(self.run_id)):
            return None
        shape = self._shape(self._result_schema())
        count = self.session.rows(f"select count(*) from {self.result}")[0][0]
        current = {d: info for d in self.trait.destinations if (info := self.current_snapshot(d)) is not None}
        self.prepared = Prepared(shape, int(count), materialised=True, current=current)
        return self.prepared

    def _result_schema(self) -> pa.Schema:
        batches = self.session.stream(f"select * from {self.result} where 1 = 0")
        schema = next(iter(batches)).schema
        for _ in batches:
            pass
        return schema.remove(schema.get_field_index(ROW_HASH)).remove(schema.get_field_index(ID))

    def _columns(self, shape: Shape) -> tuple[str, str, str]:
        d = self.dialect
        id_text = d.id_text(shape.id_column)
        row_hash = d.row_hash(id_text, shape.uid_column, shape.traits, exact_decimals=self.config.settings.decimals == "string")
        bad = " or ".join(f"({d.not_finite(c)})" for c in non_finite_columns(shape)) if not self.config.settings.allow_non_finite else ""
        return id_text, row_hash, bad or "1 = 0"

    def _aggregate(self, sql: str, shape: Shape, max_rows: int) -> tuple[int, int]:
        """One pass over the result: the row rules that need no grouping, and its digest.

        Without the ``limit`` that stops a materialisation past ``max_rows``: a limit would keep
        the warehouse from running the pass in parallel, and nothing is written or fetched.
        """
        id_text, row_hash, bad = self._columns(shape)
        d = self.dialect
        query = f"(\n{strip_sql(sql)}\n) q"
        row = self.session.rows(
            f"""select count(*), sum(case when {ID} is null then 1 else 0 end), sum(case when bad then 1 else 0 end),
                       coalesce(sum({d.digest_part(ROW_HASH)}), 0)
                from (select {id_text} as {ID}, {row_hash} as {ROW_HASH}, ({bad}) as bad from {query}) t"""
        )[0]
        rows, nulls, bad_rows, digest = (int(x or 0) for x in row)
        self._check_rows(shape, rows, nulls, bad_rows, max_rows, source=query, query=strip_sql(sql))
        return rows, digest

    def _materialise(self, sql: str, shape: Shape, max_rows: int) -> tuple[int, int]:
        """Write the result with its ids and row hashes; its row rules checked, its count and digest."""
        id_text, row_hash, bad = self._columns(shape)
        s = self.session
        s.execute(f"drop table if exists {self.result}")
        s.execute(
            f"""create {self.dialect.scratch_table} {self.result} as
                select {id_text} as {ID}, {row_hash} as {ROW_HASH}, q.* from ({limited(sql, max_rows)}) q"""
        )
        row = s.rows(
            f"""select count(*), sum(case when {ID} is null then 1 else 0 end), sum(case when {bad} then 1 else 0 end),
                       coalesce(sum({self.dialect.digest_part(ROW_HASH)}), 0)
                from {self.result}"""
        )[0]
        rows, nulls, bad_rows, digest = (int(x or 0) for x in row)
        self._check_rows(shape, rows, nulls, bad_rows, max_rows, source=self.result, query=limited(sql, max_rows))
        return rows, digest

    def _unique_by_digest(self, destination: str, info: SnapshotInfo, rows: int, digest: int) -> bool:
        """Whether the result's ids are proven unique by one current snapshot, without grouping the result.

        Take the changed rows out of both sides (the destination's join, which its diff then
        uses): what is left of the result must be exactly what is left of the snapshot (whose
        ids are unique), by count and digest, and the changed ids must be unique. A duplicate id
        breaks one of the three, and the ids are then grouped as before.
        """
        changes = self._join(destination, info, full_resync=False)
        part = self.dialect.digest_part
        row = self.session.rows(
            f"""select sum(case when {CHANGE} <> 'exited' then 1 else 0 end), coalesce(sum({part(NEW_HASH)}), 0),
                       sum(case when {CHANGE} <> 'added' then 1 else 0 end), coalesce(sum({part(OLD_HASH)}), 0),
                       count(distinct {ID}), count(*)
                from {changes}"""
        )[0]
        result_rows, result_digest, snapshot_rows, snapshot_digest, distinct, total = (int(x or 0) for x in row)
        return (distinct == total and rows - result_rows == info.rows - snapshot_rows
                and digest - result_digest == info.digest - snapshot_digest)

    def _join(self, destination: str, info: SnapshotInfo, *, full_resync: bool) -> str:
        """The destination's changed ids (with both sides' hashes), joined once per run; the table's name."""
        s = self.session
        changes = s.table(changes_table(self.run_id, self.name, destination))
        if self._joined.get(destination) == full_resync:
            return changes
        snapshot = s.table(info.table)
        differs = "1 = 1" if full_resync else f"n.{ID} is null or s.{ID} is null or s.{ROW_HASH} is null or n.{ROW_HASH} <> s.{ROW_HASH}"
        s.execute(f"drop table if exists {changes}")
        s.execute(
            f"""create {self.dialect.scratch_table} {changes} as
                select coalesce(n.{ID}, s.{ID}) as {ID},
                       case when s.{ID} is null then 'added' when n.{ID} is null then 'exited' else 'changed' end as {CHANGE},
                       n.{ROW_HASH} as {NEW_HASH}, s.{ROW_HASH} as {OLD_HASH}
                from {self.result} n full outer join {snapshot} s on n.{ID} = s.{ID}
                where {differs}"""
        )
        self._joined[destination] = full_resync
        return changes

    def _check_rows(self, shape: Shape, rows: int, nulls: int, bad_rows: int, max_rows: int, *, source: str, query: str) -> None:
        """Local mode's row rules and texts (``pipeline.validate``); ``source`` holds the checked rows,
        ``query`` is the trait's, whose output positions a null id is reported by."""
        where = f"trait {self.name}"
        if rows > max_rows:
            raise ValidationError(
                f"{where}: the result has more than max_rows = {max_rows:,} rows; the query was stopped there",
                hint="narrow the query, or raise max_rows on the trait or in settings",
            )
        if nulls:
            # the positions in the query's output, as local mode counts them while it reads: only
            # on this error path is the query read again
            id_text = self.dialect.id_text(shape.id_column)
            positions = [str(r[0]) for r in self.session.rows(
                f"""select n from (select row_number() over () as n, {id_text} as i from (
                    {query}
                ) q) t where i is null order by n limit {EXAMPLES}"""
            )]
            raise ValidationError(
                f"{where}: {nulls:,} row(s) have a null or empty {shape.id_column.name} (result rows {', '.join(positions)})",
                hint=f"filter them out in SQL: where {shape.id_column.name} is not null",
            )
        if bad_rows:
            id_text, _, bad = self._columns(shape)
            ids = [str(r[0]) for r in self.session.rows(
                f"select {id_text} as i from {source} where {bad} order by i limit {EXAMPLES}"
            )]
            columns = ", ".join(c.name for c in non_finite_columns(shape))
            raise ValidationError(
                f"{where}: {bad_rows:,} row(s) hold NaN or Infinity in {columns} (ids {', '.join(ids)})",
                hint="fix them in SQL (e.g. nullif), or set settings.allow_non_finite: true to send them as null",
            )

    def _check_unique(self, shape: Shape) -> None:
        dupes = self.session.rows(
            f"""select {ID}, count(*) as c, count(*) over () as id_groups from {self.result}
                group by {ID} having count(*) > 1 order by c desc, {ID} limit {EXAMPLES}"""
        )
        if dupes:
            examples = ", ".join(f"{r[0]!r} ×{r[1]}" for r in dupes)
            raise ValidationError(
                f"trait {self.name}: {dupes[0][2]:,} {shape.id_column.name} value(s) appear more than once ({examples})",
                hint=f"return one row per {shape.id_column.name}: group by it or pick one row per id",
            )

    # -- diff ---------------------------------------------------------------------------------
    def fetch_all(self, path: Path, augment: Any) -> None:
        """The whole materialised result, staged locally as local mode stages it (for a reseed)."""
        columns = self._user_columns()
        batches = self.session.stream(f"select {columns} from {self.result}")
        stage((self.fetched.count(b) for b in batches), path, trait=self.name, augment=augment)

    def _user_columns(self, alias: str = "") -> str:
        """The result's own columns, quoted (and qualified by ``alias``)."""
        assert self.prepared is not None
        shape = self.prepared.shape
        names = [shape.id_column.name, *([shape.uid_column.name] if shape.uid_column else []), *(c.name for c in shape.traits)]
        prefix = f"{alias}." if alias else ""
        return ", ".join(prefix + self.dialect.quote(n) for n in names)

    def largest_call(self, destination: str) -> int | None:
        return None  # the change file came out of the warehouse: check_sizes reads it

    def diff(self, destination: str, out: Path, *, full_resync: bool) -> DestinationCounts:
        """Write ``out`` (the change file) for a destination whose warehouse snapshot is current."""
        assert self.prepared is not None
        prepared = self.prepared
        info = prepared.current[destination]
        if not prepared.materialised:
            write_no_changes(self.con, out)
            return DestinationCounts(unchanged=prepared.rows, snapshot_rows=info.rows)
        s = self.session
        changes = self._join(destination, info, full_resync=full_resync)
        counts = DestinationCounts()
        for change, count in s.rows(f"select {CHANGE}, count(*) from {changes} group by {CHANGE}"):
            setattr(counts, str(change), int(count))
        counts.unchanged = prepared.rows - counts.added - counts.changed
        counts.snapshot_rows = info.rows
        fetched = out.with_name(f"fetched-{destination}.parquet")
        rows = s.stream(
            f"select c.{ID}, c.{CHANGE}, {self._user_columns('n')} from {changes} c left join {self.result} n on n.{ID} = c.{ID}"
        )
        stage((self.fetched.count(b) for b in rows), fetched, trait=self.name)
        self._change_file(destination, fetched, out)
        return counts

    def _change_file(self, destination: str, fetched: Path, out: Path) -> None:
        """The change file from the fetched changes and the local snapshot's values before."""
        assert self.prepared is not None
        shape = self.prepared.shape
        f = f"read_parquet('{sql_path(fetched)}')"
        before = int(self.con.execute(f"select count(*) filter (where {CHANGE} <> 'added') from {f}").fetchall()[0][0])
        # the values before get names no trait column has: the trait's own columns (``user_id``,
        # ``values_json``…) stay unqualified in ``shape``'s SQL
        old = ("select cast(null as varchar) as sql_traits_old_id, cast(null as ubigint) as sql_traits_old_row_hash, "
               "cast(null as varchar) as sql_traits_old_values_json, cast(null as varchar) as sql_traits_old_user_id where false")
        if before:
            snapshot = self.state.snapshot(self.name, destination)
            if snapshot:
                old = f"""select id as sql_traits_old_id, row_hash as sql_traits_old_row_hash, values_json as sql_traits_old_values_json,
                        user_id as sql_traits_old_user_id
                    from ({snapshot.rows(self.con, "id, row_hash, values_json, user_id, exited")})
                    where id in (select {ID} from {f} where {CHANGE} <> 'added')"""
        user_id = shape.uid_sql or "cast(null as varchar)"
        sent = f"c.{CHANGE} <> 'exited'"
        self.con.execute(
            f"""COPY (
                select c.{ID} as id, c.{CHANGE} as change,
                       case when {sent} then {shape.h_sql} end as row_hash,
                       case when {sent} then {shape.v_sql} end as values_json,
                       coalesce(case when {sent} then {user_id} end, o.sql_traits_old_user_id) as user_id,
                       o.sql_traits_old_row_hash as old_row_hash, o.sql_traits_old_values_json as old_values_json,
                       o.sql_traits_old_user_id as old_user_id
                from {f} c left join ({old}) o on o.sql_traits_old_id = c.{ID}
            ) TO '{sql_path(out)}' (FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE 20000)"""
        )

    def sample_ids(self, path: Path, column: str, limit: int) -> None:
        """A deterministic sample of the result's ids, as a file with the id column (the known-id guard)."""
        if self.prepared is None or not self.prepared.materialised:
            return
        d = self.dialect
        batches = self.session.stream(f"select {ID} as {d.quote(column)} from {self.result} order by {d.md5(ID)} limit {int(limit)}")
        stage((self.fetched.count(b) for b in batches), path, trait=self.name)

    # -- fold ---------------------------------------------------------------------------------
    def fold(self, destination: str, acked: Path | None, change_file: Path, *, reseed: bool) -> None:
        """Advance the destination's warehouse snapshot by what it acknowledged (``acked``: the
        ids the run's commits recorded), then renew its lineage here and in the local store."""
        if not self.session.tables(result_table(self.run_id)):
            return  # nothing was materialised: nothing was sent
        SnapshotFold(self.session, self.state, self.con, self.name, self.run_id).fold(destination, acked, change_file, reseed=reseed)

    def finish(self) -> None:
        """The run is over: its tables go."""
        self.drop_run_tables(self.run_id)

