"""Advancing a destination's warehouse snapshot by what it acknowledged, after the local commit.

The acknowledged ids (or the unacknowledged ones, when fewer) go up in bulk and the snapshot
advances in one transaction, with its row count, digest and a new lineage, which the local
store is told too (``state.base.warehouse_lineage_key``): only a snapshot both sides agree on
is diffed in the warehouse. Folding is idempotent (delete the folded ids, insert their rows
from the run's result), so a resumed run folds again safely. A snapshot that was not current
is *reseeded* from the run's result instead: every row, less the changes not acknowledged.
"""

from __future__ import annotations

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
from traits.columnar import sql_path
from traits.snapshot_format import source
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
        matching = self._acked_ids(acked, change_file) if acked is not None else None
        try:
            if reseed:
                self._reseed(destination, matching, change_file)
            else:
                self._advance(destination, matching, change_file)
        finally:
            if matching is not None:
                matching.unlink(missing_ok=True)

    def _ids(self, sql: str) -> Iterator[pa.Array]:
        reader = self.con.sql(sql).to_arrow_reader(100_000)
        for batch in reader:
            yield batch.column(0)

    def _acked_ids(self, acked: Path, change_file: Path) -> Path:
        """A file of the ids of ``change_file`` whose change, as it is there, was acknowledged
        (written once: the fold reads them more than once).

        ``acked`` holds every change the run recorded, in every attempt. A resumed run's change
        file can hold an id again with another change (the result moved on since an earlier
        attempt sent it): that id was acknowledged, but not for this change, and folding it
        would record a value the destination never got.
        """
        out = acked.with_name(acked.name + ".matching.parquet")
        self.con.execute(
            f"""COPY (select c.id from {source(self.con, change_file, "changes")} c semi join read_parquet('{sql_path(acked)}') a
                on a.id = c.id and a.change = c.change and a.after_row_hash is not distinct from
                   case when c.change = 'exited' then null else c.row_hash end
            ) TO '{sql_path(out)}' (FORMAT parquet)"""
        )
        return out

    def _count(self, sql: str) -> int:
        return int(self.con.execute(f"select count(*) from ({sql})").fetchall()[0][0])

    def _advance(self, destination: str, acked: Path | None, change_file: Path) -> None:
        if acked is None:
            return
        info = snapshot_info(self.session, self.name, destination)
        assert info is not None
        s = self.session
        changes = source(self.con, change_file, "changes")
        acked_ids = f"select id from read_parquet('{sql_path(acked)}')"
        unacked_ids = f"select id from {changes} where id not in ({acked_ids})"
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

    def _reseed(self, destination: str, acked: Path | None, change_file: Path) -> None:
        """Rebuild the snapshot from the result: every row, less the changes not acknowledged
        (an unacknowledged change or exit stays as a NULL hash, so it is sent again)."""
        s = self.session
        changes = source(self.con, change_file, "changes")
        acked_ids = f"select id from read_parquet('{sql_path(acked)}')" if acked is not None else "select cast(null as varchar) as id where false"
        unsent = s.table(upload_table(self.run_id, self.name, destination, UNSENT))
        different = s.table(upload_table(self.run_id, self.name, destination, UNSENT_DIFFERENT))
        for table in (unsent, different):
            s.execute(f"drop table if exists {table}")
        s.upload_ids(unsent, self._ids(f"select id from {changes} where id not in ({acked_ids})"))
        s.upload_ids(different, self._ids(f"select id from {changes} where change <> 'added' and id not in ({acked_ids})"))
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
