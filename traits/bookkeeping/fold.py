"""Advancing a destination's warehouse snapshot by what it acknowledged, after the local commit.

The acknowledged ids (or the unacknowledged ones, when fewer) go up in bulk and the snapshot
advances in one transaction, with its row count, digest and a new lineage, which the local
store is told too (``state.base.warehouse_lineage_key``): only a snapshot both sides agree on
is diffed in the warehouse. Folding is idempotent (delete the folded ids, insert their rows
from the run's result), so a resumed run folds again safely. A snapshot that was not current
is *reseeded* from the run's result instead: every row, less the changes not acknowledged.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from traits.bookkeeping.tables import (
    ID,
    ROW_HASH,
    UNSENT,
    UNSENT_DIFFERENT,
    changes_table,
    result_table,
    snapshot_table,
    upload_table,
)
from traits.columnar import join_passes, memory_limit_bytes, sql_path
from traits.snapshot_format import DIGEST_MODULUS, source
from traits.state.base import warehouse_lineage_key as lineage_key

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from traits.bookkeeping.sessions import Session
    from traits.state.base import StateStore


@dataclass
class SnapshotInfo:
    """A destination's warehouse snapshot, as the ``snapshots`` table describes it."""

    table: str
    algorithm: str
    lineage: str
    rows: int
    digest: int


def snapshot_info(session: Session, trait: str, destination: str) -> SnapshotInfo | None:
    s = session
    rows = s.rows(
        f"select snapshot_table, algorithm, lineage, row_count, digest from {s.table('snapshots')} where trait = %s and destination = %s",
        (trait, destination),
    )
    if not rows:
        return None
    table, algorithm, lineage, count, digest = rows[0]
    return SnapshotInfo(str(table), str(algorithm), str(lineage), int(count), int(digest))


@dataclass(frozen=True)
class _Split:
    """A change file's ids and changes, as SQL: those acknowledged as they are there, and the rest."""

    acked: str
    unacked: str


class SnapshotFold:
    """The fold of one run's acknowledged changes into one trait's warehouse snapshots."""

    def __init__(self, session: Session, state: StateStore, con: duckdb.DuckDBPyConnection, name: str, run_id: str) -> None:
        self.session = session
        self.dialect = session.dialect
        self.state = state
        self.con = con
        self.name = name
        self.run_id = run_id
        self.result = session.table(result_table(run_id))

    def fold(self, destination: str, acked: Path | None, change_file: Path, *, reseed: bool) -> None:
        if acked is None and not reseed:
            return  # nothing was acknowledged: the snapshot stays as it is
        work = change_file.with_name(change_file.name + ".acked-split")
        shutil.rmtree(work, ignore_errors=True)
        try:
            split = self._split(acked, change_file, work)
            if reseed:
                self._reseed(destination, split)
            else:
                self._advance(destination, split)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _ids(self, sql: str) -> Iterator[pa.Array]:
        reader = self.con.sql(sql).to_arrow_reader(100_000)
        for batch in reader:
            yield batch.column(0)

    def _split(self, acked: Path | None, change_file: Path, work: Path) -> _Split:
        """The ids of ``change_file``, told apart by whether their change, as it is there, was
        acknowledged (the split is written once: the fold reads it more than once).

        ``acked`` holds every change the run recorded, in every attempt. A resumed run's change
        file can hold an id again with another change (the result moved on since an earlier
        attempt sent it): that id was acknowledged, but not for this change, and folding it
        would record a value the destination never got.

        When the recorded changes are exactly the change file's (same count, same sum of the
        hashes of each id, change and hash: a first sync that was wholly acknowledged), no join
        is needed. Otherwise the join runs in passes over the ids split by their hash, each
        within the engine's memory limit (``columnar.join_passes``): at a 100M-row first
        sync a single join of the two 100M-row sides ran out of memory at the default limit.
        """
        changes = source(self.con, change_file, "changes")
        nothing = "select cast(null as varchar) as id, cast(null as varchar) as change where false"
        if acked is None:
            return _Split(nothing, f"select id, change from {changes}")
        recorded = f"read_parquet('{sql_path(acked)}')"
        after = "case when change = 'exited' then null else row_hash end"
        digest = f"coalesce(sum(hash(id, change, cast({{}} as ubigint))), 0) % {DIGEST_MODULUS}"
        mine = self.con.execute(f"select count(*), {digest.format(after)}, coalesce(avg(strlen(id)), 0) from {changes}").fetchall()[0]
        theirs = self.con.execute(f"select count(*), {digest.format('after_row_hash')} from {recorded}").fetchall()[0]
        if (int(mine[0]), int(mine[1])) == (int(theirs[0]), int(theirs[1])):
            return _Split(f"select id, change from {changes}", nothing)
        passes = join_passes(int(mine[0]) + int(theirs[0]), float(mine[2]), memory_limit_bytes(self.con))
        work.mkdir(parents=True)
        for part in range(passes):
            share = "" if passes == 1 else f" where hash(id) % {passes} = {part}"
            self.con.execute(
                f"""COPY (
                    select c.id, c.change, exists (
                        select 1 from (select id, change, after_row_hash from {recorded}{share}) a
                        where a.id = c.id and a.change = c.change
                          and a.after_row_hash is not distinct from case when c.change = 'exited' then null else c.row_hash end
                    ) as acknowledged
                    from (select id, change, row_hash from {changes}{share}) c
                ) TO '{sql_path(work / f"part-{part}.parquet")}' (FORMAT parquet)"""
            )
        parts = f"read_parquet('{sql_path(work)}/part-*.parquet')"
        return _Split(f"select id, change from {parts} where acknowledged", f"select id, change from {parts} where not acknowledged")

    def _count(self, sql: str) -> int:
        return int(self.con.execute(f"select count(*) from ({sql})").fetchall()[0][0])

    def _advance(self, destination: str, split: _Split) -> None:
        info = snapshot_info(self.session, self.name, destination)
        assert info is not None
        s = self.session
        acked_ids = f"select id from ({split.acked})"
        unacked_ids = f"select id from ({split.unacked})"
        change_table = s.table(changes_table(self.run_id, self.name, destination))
        if self._count(unacked_ids) < self._count(acked_ids) and s.tables(changes_table(self.run_id, self.name, destination)):
            table = s.table(upload_table(self.run_id, self.name, destination, UNSENT))
            s.execute(f"drop table if exists {table}")
            s.upload_ids(table, self._ids(unacked_ids))
            folded = f"select {ID} from {change_table} where {ID} not in (select {ID} from {table})"
        else:
            table = s.table(upload_table(self.run_id, self.name, destination, "acked"))
            s.execute(f"drop table if exists {table}")
            s.upload_ids(table, self._ids(acked_ids))
            folded = f"select {ID} from {table}"
        snapshot = s.table(info.table)
        part = self.dialect.digest_part(ROW_HASH)
        lineage = uuid.uuid4().hex
        with s.transaction():
            removed = s.rows(f"select count(*), coalesce(sum({part}), 0) from {snapshot} where {ID} in ({folded})")[0]
            s.execute(f"delete from {snapshot} where {ID} in ({folded})")
            s.execute(f"insert into {snapshot} ({ID}, {ROW_HASH}) select {ID}, {ROW_HASH} from {self.result} where {ID} in ({folded})")
            added = s.rows(f"select count(*), coalesce(sum({part}), 0) from {snapshot} where {ID} in ({folded})")[0]
            self._save_info(destination, info.table, info.rows - int(removed[0]) + int(added[0]),
                            info.digest - int(removed[1]) + int(added[1]), lineage)
        self.state.set_value(lineage_key(self.name, destination), lineage)

    def _reseed(self, destination: str, split: _Split) -> None:
        """Rebuild the snapshot from the result: every row, less the changes not acknowledged
        (an unacknowledged change or exit stays as a NULL hash, so it is sent again)."""
        s = self.session
        unsent = s.table(upload_table(self.run_id, self.name, destination, UNSENT))
        different = s.table(upload_table(self.run_id, self.name, destination, UNSENT_DIFFERENT))
        for table in (unsent, different):
            s.execute(f"drop table if exists {table}")
        s.upload_ids(unsent, self._ids(f"select id from ({split.unacked})"))
        s.upload_ids(different, self._ids(f"select id from ({split.unacked}) where change <> 'added'"))
        name = snapshot_table(self.name, destination)
        fresh = s.table(name + "_next")
        s.execute(f"drop table if exists {fresh}")
        s.execute(
            f"""create table {fresh} as
                select {ID}, {ROW_HASH} from {self.result} where {ID} not in (select {ID} from {unsent})
                union all select {ID}, cast(null as {self.dialect.hash_type}) as {ROW_HASH} from {different}"""
        )
        part = self.dialect.digest_part(ROW_HASH)
        count, digest = s.rows(f"select count(*), coalesce(sum({part}), 0) from {fresh}")[0]
        lineage = uuid.uuid4().hex
        with s.transaction():
            s.execute(f"drop table if exists {s.table(name)}")
            s.execute(f"alter table {fresh} rename to {self.dialect.quote(name)}")
            self._save_info(destination, name, int(count), int(digest), lineage)
        self.state.set_value(lineage_key(self.name, destination), lineage)

    def _save_info(self, destination: str, table: str, rows: int, digest: int, lineage: str) -> None:
        s = self.session
        s.execute(f"delete from {s.table('snapshots')} where trait = %s and destination = %s", (self.name, destination))
        s.execute(
            f"""insert into {s.table('snapshots')} (trait, destination, snapshot_table, algorithm, lineage, row_count, digest, updated_at)
                values (%s, %s, %s, %s, %s, %s, %s, current_timestamp)""",
            (self.name, destination, table, self.dialect.algorithm, lineage, rows, str(digest)),
        )
