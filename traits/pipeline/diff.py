"""Diff: compare the staged result's row hashes with one destination's snapshot.

Every id is exactly one of added, changed, unchanged or exited. The comparison is a join run
by the columnar engine over files (``Differ`` is the seam ``bookkeeping.differ``, the
warehouse-side diff, implements too). Only added, changed and exited rows are written to the
change file (``snapshot_format``'s layout), with the values a call needs: the new canonical
JSON, and for exits and changed rows the old values (``old_values_json``, ``old_row_hash``,
``old_user_id``: what the snapshot held), which the run's history keeps so ``traits revert``
can send them again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from traits.columnar import join_passes, memory_limit_bytes, sql_path
from traits.errors import GuardError
from traits.pipeline.validate import RowSummary
from traits.snapshot_format import (
    DIGEST_MODULUS,
    HASH_CANARY_SQL,
    STAGED_ROW_HASH,
    Snapshot,
    delta_columns_sql,
    digest_sql,
    pair_hash_sql,
    source,
    write_no_changes,
)
from traits.state.records import DestinationCounts

if TYPE_CHECKING:
    import duckdb

    from traits.pipeline.first_sync import WrittenFirstSync
    from traits.pipeline.validate import Shape


class Differ(Protocol):
    """The diff of one run, per destination, in either mode (``bookkeeping.differ`` is the other)."""

    def diff(self, destination: str, out: Path, *, full_resync: bool) -> DestinationCounts:
        """Write the change file ``out`` (``snapshot_format.CHANGE_FILE_COLUMNS``) and count the outcomes.

        Changed rows and exits carry the values the destination held (the run's history keeps
        them, for revert).
        """

    def largest_call(self, destination: str) -> int | None:
        """The size (``validate.CALL_SIZE_SQL``) of the largest row of ``destination``'s change
        file when it was measured as the file was written, so ``check_sizes`` need not read it."""


class LocalDiffer:
    """The diff as joins over local Parquet files: the staged result and each snapshot."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, staged: Path, shape: Shape, summary: RowSummary, ensure_unique: Callable[[], None],
        snapshots: Callable[[str], Snapshot], run_id: str | None = None, first_sync_file: WrittenFirstSync | None = None,
    ) -> None:
        self.con = con
        #: a first sync's change file written while staging (``first_sync``), for ``run_id``
        self.first_sync_file = first_sync_file
        self._largest: dict[str, int] = {}
        self.snapshots = snapshots
        #: with it, a first sync's change file is written as a snapshot delta too (``delta_columns_sql``)
        self.run_id = run_id
        self.staged = staged
        self.shape = shape
        self.summary = summary
        #: checks the result's ids are unique (once); needed unless a digest proves it
        self.ensure_unique = ensure_unique
        row = con.execute(f"select {HASH_CANARY_SQL}").fetchone()
        self.canary = int(row[0]) if row else 0

    def largest_call(self, destination: str) -> int | None:
        return self._largest.get(destination)

    def _hashes(self, snapshot: Snapshot) -> str:
        """The snapshot's (id, row_hash), with rows an older hash function wrote rehashed from their values."""
        stale = {}
        for file in snapshot.files:
            row = self.con.execute(f"select hash_canary from {source(self.con, file, 'snapshot')} limit 1").fetchone()
            if row is not None and row[0] is not None and int(row[0]) != self.canary:
                stale[file] = f"id, {self.shape.rehash_sql} as row_hash, exited"
        return snapshot.rows(self.con, "id, row_hash, exited", stale)

    def diff(self, destination: str, out: Path, *, full_resync: bool) -> DestinationCounts:
        snapshot = self.snapshots(destination)
        if not snapshot:
            self.ensure_unique()
            return self._first_sync(destination, out)
        con = self.con
        hashes = self._hashes(snapshot)
        row = con.execute(digest_sql(hashes, "coalesce(avg(strlen(id)), 0)")).fetchone() or (0, 0, 0)
        snap_rows, snap_digest, id_bytes = int(row[0]), int(row[1]), float(row[2])
        if not full_resync and snap_rows == self.summary.rows and snap_digest == self.summary.digest:
            # the result holds exactly the snapshot's rows: nothing to join, nothing to send
            return self._unchanged(out)
        staged = source(con, self.staged, "staged")
        self._join(f"(select {self.shape.id_sql} as id, {STAGED_ROW_HASH} as row_hash from {staged})", hashes,
                   full_resync=full_resync, passes=join_passes(max(snap_rows, self.summary.rows), id_bytes, memory_limit_bytes(con)))
        counts = DestinationCounts()
        for change, count in con.execute("select change, count(*) from delta group by change").fetchall():
            setattr(counts, str(change), int(count))
        if not self._unique_by_digest(snap_rows, snap_digest):
            self.ensure_unique()
        counts.unchanged = self.summary.rows - counts.added - counts.changed
        counts.snapshot_rows = counts.unchanged + counts.changed + counts.exited
        old_for = "d.change = 'exited' or d.change = 'changed'"
        user_id = self.shape.uid_sql or "cast(null as varchar)"
        # the JSON of a row is built only for the rows that will be sent, and each file is
        # read again only when some row needs it
        none = "select cast(null as varchar) as id, cast(null as varchar) as values_json, cast(null as varchar) as user_id where false"
        values = none
        if counts.added or counts.changed:
            values = f"""select {self.shape.id_sql} as id, {self.shape.v_sql} as values_json, {user_id} as user_id
                from {staged}
                where {self.shape.id_sql} in (select id from delta where change <> 'exited')"""
        old = none
        if counts.exited or counts.changed:
            old = f"""select id, values_json, user_id from ({snapshot.rows(con, "id, values_json, user_id, exited")})
                where id in (select id from delta d where {old_for})"""
        con.execute(
            f"""COPY (
                select d.id, d.change, d.row_hash, r.values_json, coalesce(r.user_id, o.user_id) as user_id,
                       d.old_row_hash, o.values_json as old_values_json, o.user_id as old_user_id
                from delta d
                left join ({values}) r on r.id = d.id
                left join ({old}) o on o.id = d.id
            ) TO '{sql_path(out)}' (FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE 20000)"""
        )
        con.execute("drop table delta")
        return counts

    def _join(self, result: str, hashes: str, *, full_resync: bool, passes: int) -> None:
        """The temp table ``delta``: the ids added, changed or exited, with both sides' hashes.

        A full outer join of the result's and the snapshot's (id, row_hash), in ``passes``
        passes over the ids split by their hash: the engine's hash join holds a share of each
        side per thread while it spills, and at 100M rows a single join ran out of memory at
        the default limit (``join_passes``).
        """
        differs = "true" if full_resync else "n.row_hash is distinct from s.row_hash"
        self.con.execute("create or replace temp table delta (id varchar, change varchar, row_hash ubigint, old_row_hash ubigint)")
        for part in range(passes):
            share = "" if passes == 1 else f" where hash(id) % {passes} = {part}"
            self.con.execute(
                f"""insert into delta
                select coalesce(n.id, s.id) as id,
                       case when s.id is null then 'added' when n.id is null then 'exited' else 'changed' end as change,
                       n.row_hash as row_hash, s.row_hash as old_row_hash
                from (select id, row_hash from {result}{share}) n
                full outer join (select id, row_hash from ({hashes}){share}) s on n.id = s.id
                where {differs}"""
            )

    def _unique_by_digest(self, snap_rows: int, snap_digest: int) -> bool:
        """Whether the ids are proven unique without grouping the whole result.

        Take the changed rows out of both sides: what is left of the result must be exactly
        what is left of the snapshot (whose ids are unique), and the changed ids unique.
        """
        row = self.con.execute(
            f"""select count(*) filter (where change <> 'exited'), coalesce(sum({pair_hash_sql("row_hash")}) filter (where change <> 'exited'), 0),
                      count(*) filter (where change <> 'added'), coalesce(sum({pair_hash_sql("old_row_hash")}) filter (where change <> 'added'), 0),
                      count(distinct id) = count(*)
               from delta"""
        ).fetchone()
        if row is None:
            return False
        result_rows, result_digest, snapshot_rows, snapshot_digest, distinct = row
        left_of_result = (self.summary.digest - int(result_digest)) % DIGEST_MODULUS
        left_of_snapshot = (snap_digest - int(snapshot_digest)) % DIGEST_MODULUS
        return bool(distinct) and self.summary.rows - int(result_rows) == snap_rows - int(snapshot_rows) and left_of_result == left_of_snapshot

    def _unchanged(self, out: Path) -> DestinationCounts:
        write_no_changes(self.con, out)
        return DestinationCounts(unchanged=self.summary.rows, snapshot_rows=self.summary.rows)

    def _first_sync(self, destination: str, out: Path) -> DestinationCounts:
        """Every row is added: the change file is one streaming pass, no join (or the file staging wrote).

        It carries the snapshot's columns too, so a commit that finds every row acknowledged
        keeps it as the snapshot's delta instead of writing the 10M rows again.
        """
        if self.first_sync_file is not None and self.run_id is not None:
            # written while the result was staged (``first_sync.FirstSyncFile``); a second
            # destination's first sync takes a link of it (files are never written in place)
            tmp = out.with_name(out.name + ".tmp")
            tmp.unlink(missing_ok=True)
            os.link(self.first_sync_file.path, tmp)
            os.replace(tmp, out)
            self._largest[destination] = self.first_sync_file.largest
            return DestinationCounts(added=self.summary.rows)
        rows = first_sync_sql(self.shape, source(self.con, self.staged, "staged"), self.run_id)
        self.con.execute(f"COPY ({rows}) TO '{sql_path(out)}' (FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE 20000)")
        return DestinationCounts(added=self.summary.rows)


def first_sync_sql(shape: Shape, staged: str, run_id: str | None) -> str:
    """The change rows of a first sync, every row added, from ``staged`` (a relation of staged rows).

    With ``run_id`` they carry the snapshot's columns too (``delta_columns_sql``).
    """
    user_id = shape.uid_sql or "cast(null as varchar)"
    as_delta = f", {delta_columns_sql(run_id)}" if run_id is not None else ""
    return f"""select {shape.id_sql} as id, 'added' as change, {STAGED_ROW_HASH} as row_hash, {shape.v_sql} as values_json,
               {user_id} as user_id, cast(null as ubigint) as old_row_hash, cast(null as varchar) as old_values_json,
               cast(null as varchar) as old_user_id{as_delta}
        from {staged}"""


def guard(name: str, destination: str, *, changed: int, exits: int, snapshot_rows: int,
          max_exit_ratio: float, max_change_ratio: float | None) -> None:
    """Stop the run before sending when exits (or changes) exceed their share of the snapshot."""
    if snapshot_rows == 0:
        return  # a first sync is exempt
    exit_ratio = exits / snapshot_rows
    if exit_ratio > max_exit_ratio:
        raise GuardError(
            f"trait {name} → {destination}: {exits:,} of {snapshot_rows:,} synced ids "
            f"({exit_ratio:.0%}) would exit, more than max_exit_ratio = {max_exit_ratio:.0%}; nothing was sent",
            hint="check the query (did it return too little?); if this is right, run again with --force",
        )
    if max_change_ratio is not None:
        change_ratio = changed / snapshot_rows
        if change_ratio > max_change_ratio:
            raise GuardError(
                f"trait {name} → {destination}: {changed:,} of {snapshot_rows:,} synced ids "
                f"({change_ratio:.0%}) changed, more than max_change_ratio = {max_change_ratio:.0%}; nothing was sent",
                hint="check the query; if this is right, run again with --force",
            )
