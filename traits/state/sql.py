"""Snapshot folding, compaction and lookups, done by the columnar engine over Parquet files.

Snapshot files (``snapshot_format``) carry the run that got each row acknowledged
(``acked_run``), and compaction keeps exits (``exited``, with the values the id had before), so
a profile can say what an id holds, since which run, and whether it exited. The diff reads
only live rows (``latest_rows`` drops exits unless asked), so neither changes what is sent.

Deltas of up to ``SORTED_FOLD_ROWS`` rows and compacted files are written sorted by id, so each
row group covers a narrow range of ids and a lookup of one id reads one row group per file (the
row groups' min/max statistics skip the rest); a larger delta (a first sync's) keeps its rows'
order until compaction sorts it.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traits.columnar import connect, join_passes, memory_limit_bytes, sql_path
from traits.snapshot_format import (
    CHANGE_COLUMNS,
    CHANGES_AS_HISTORY,
    CHANGES_AS_SNAPSHOT,
    DELTA_AS_HISTORY,
    HASH_CANARY_SQL,
    SNAPSHOT_COLUMNS,
    column_names,
    latest_rows,
    source,
)

#: row groups of 20,000 rows: a writer holds one per thread while it compresses it (writing a
#: 150k-row history file alone took 72 MB at 122,880 rows, 53 MB at 20,000), and a lookup of one
#: id reads one small group
PARQUET = "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 20000)"


def compact(files: Sequence[Path], out: Path) -> int:
    """Write the current rows of ``files``, exits included, as one file; returns its row count."""
    con = connect(out.parent)
    try:
        every = ", ".join(SNAPSHOT_COLUMNS)
        con.execute(f"COPY ({latest_rows(con, files, every, keep_exited=True)} order by id) TO '{sql_path(out)}' {PARQUET}")
        row = con.execute(f"select count(*) from read_parquet('{sql_path(out)}')").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def _fold_into(con: Any, changes: Path, acked_keys_sql: str | None, out: Path, run_id: str, *, sort: bool = True) -> None:
    """The delta: the rows of ``changes`` whose ids ``acked_keys_sql`` lists (None: every row)."""
    run = "'" + run_id.replace("'", "''") + "'" if run_id else "cast(null as varchar)"
    where = f"where c.id in ({acked_keys_sql})" if acked_keys_sql is not None else ""
    con.execute(
        f"""COPY (
            select {CHANGES_AS_SNAPSHOT}, {run} as acked_run
            from {source(con, changes, "changes")} c
            {where}
            {"order by c.id" if sort else ""}
        ) TO '{sql_path(out)}' {PARQUET}"""
    )


def _acked_parts(con: Any, changes: Path, acked_ids: str, parts: Path, passes: int) -> Path:
    """The rows of ``changes`` whose ids ``acked_ids`` lists, found in ``passes`` passes over the
    ids split by their hash (``columnar.join_passes``) and written as parts of ``parts``; the
    parts' files, as one path to read.

    A semi join of 10M change rows with 5M acknowledged ids ran out of memory at a 96 MB limit,
    so at 100M rows a partly acknowledged first sync could not be committed at the default
    limit, on any attempt.
    """
    rows = source(con, changes, "changes")
    parts.mkdir()
    for part in range(passes):
        share = f"hash(id) % {passes} = {part}"
        con.execute(
            f"""COPY (select * from (select * from {rows} where {share}) c where c.id in (select id from ({acked_ids}) where {share}))
                TO '{sql_path(parts / f"part-{part}.parquet")}' (FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE 20000)"""
        )
    return parts / "part-*.parquet"


#: a fold of at most this many rows is written sorted by id (a lookup then reads one row group
#: per file); a larger one (a first sync) keeps the change file's order: sorting 10M rows under
#: the engine's memory limit spilled to disk and took longer than the rest of the commit, and
#: an unsorted 10M-row file still answers a lookup in about half a second. Compaction sorts.
SORTED_FOLD_ROWS = 1_000_000
#: a recorded-changes file in the snapshot layout: a commit whose rows were all added keeps its
#: delta as its changes (a hard link), since before values are all null and after values are the
#: delta's (``snapshot_format.DELTA_AS_HISTORY`` reads it as such)
ADDED_SUFFIX = ".added.parquet"


def _every_row_acked(con: Any, changes: Path, acked_keys_sql: str) -> bool:
    """Whether the acknowledged ids are exactly the change file's ids, each once.

    Compared by count and by the sum of the ids' hashes (mod 2^64): the digest the diff already
    trusts to call a result unchanged. When it holds, the fold needs no join with the ids.
    """
    acked = con.execute(f"select count(*), coalesce(sum(hash(k.id)), 0) % 18446744073709551616 from ({acked_keys_sql}) k(id)").fetchone()
    listed = con.execute(
        f"select count(*), coalesce(sum(hash(id)), 0) % 18446744073709551616 from {source(con, changes, 'changes')}"
    ).fetchone()
    return acked is not None and listed is not None and tuple(acked) == tuple(listed)


def _join_passes(con: Any, changes: Path, acked_ids: str) -> int:
    """How many passes the semi joins of ``changes`` with ``acked_ids`` take (``join_passes``)."""
    listed = con.execute(f"select count(*), coalesce(avg(strlen(id)), 0) from {source(con, changes, 'changes')}").fetchall()[0]
    acked = con.execute(f"select count(*) from ({acked_ids})").fetchall()[0]
    return join_passes(int(listed[0]) + int(acked[0]), float(listed[1]), memory_limit_bytes(con))


def _rows(con: Any, path: Path) -> int:
    row = con.execute(f"select count(*) from read_parquet('{sql_path(path)}')").fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class Fold:
    """What ``record_and_fold`` wrote."""

    #: rows recorded as changes, rows in the snapshot delta
    recorded: int
    rows: int
    #: every row was added: the delta holds the changes too (``DELTA_AS_HISTORY`` reads it as such)
    changes_in_delta: bool = False
    #: the change file is the delta itself (``snapshot_format.delta_columns_sql``): nothing was written
    delta_is_change_file: bool = False


def _is_delta(con: Any, changes: Path, run_id: str) -> bool:
    """Whether the change file holds only added rows and carries the snapshot's columns for ``run_id``."""
    if not set(SNAPSHOT_COLUMNS) <= set(column_names(con, changes)) or not run_id:
        return False  # not a first sync's change file of this release (``snapshot_format.delta_columns_sql``)
    row = con.execute(
        f"""select count(*) filter (where change <> 'added' or exited or hash_canary <> {HASH_CANARY_SQL} or acked_run is distinct from $run) = 0
        from read_parquet('{sql_path(changes)}')""",
        {"run": run_id},
    ).fetchone()
    return bool(row and row[0])


def record_and_fold(changes: Path, acked_keys_sql: str, history: Path, delta: Path, run_id: str = "") -> Fold:
    """Write the acknowledged rows of ``changes`` twice, reading the acknowledgements once: as
    recorded changes (``history``) and as a snapshot delta (``delta``).

    When every row was acknowledged, no join with the ids is needed; when moreover every row was
    added, the delta is the changes too (``history`` is not written); and when the change file
    carries the snapshot's columns (a first sync's), it is the delta (nothing is written).
    """
    con = connect(delta.parent)
    acked_file = delta.with_name(delta.name + ".acked.parquet")
    parts = delta.with_name(delta.name + ".acked-parts")
    shutil.rmtree(parts, ignore_errors=True)
    try:
        if _every_row_acked(con, changes, acked_keys_sql):
            rows = _rows(con, changes)
            if _is_delta(con, changes, run_id):
                return Fold(rows, rows, changes_in_delta=True, delta_is_change_file=True)
            _fold_into(con, changes, None, delta, run_id, sort=rows <= SORTED_FOLD_ROWS)
            added_only = con.execute(f"select count(*) = 0 from {source(con, changes, 'changes')} where change <> 'added'").fetchone()
            if added_only is not None and added_only[0]:
                return Fold(rows, rows, changes_in_delta=True)
            con.execute(f"COPY (select {CHANGES_AS_HISTORY} from {source(con, changes, 'changes')} c) TO '{sql_path(history)}' {PARQUET}")
            return Fold(rows, rows)
        # the acknowledged ids, read once, go to a file (streamed: a temp table of 10M ids would be
        # held in memory); each write below semi-joins it, so an id acknowledged twice counts once
        con.execute(f"COPY (select id from ({acked_keys_sql}) k(id)) TO '{sql_path(acked_file)}' {PARQUET}")
        acked_ids = f"select id from read_parquet('{sql_path(acked_file)}')"
        passes = _join_passes(con, changes, acked_ids)
        acked: str | None = acked_ids
        if passes > 1:
            # too many for one join within the memory limit: the acknowledged rows are found once,
            # in passes, and both files are written from them (unsorted: a fold of that size)
            changes, acked = _acked_parts(con, changes, acked_ids, parts, passes), None
        where = f"where c.id in ({acked})" if acked is not None else ""
        con.execute(f"COPY (select {CHANGES_AS_HISTORY} from {source(con, changes, 'changes')} c {where}) TO '{sql_path(history)}' {PARQUET}")
        _fold_into(con, changes, acked, delta, run_id, sort=passes == 1)
        return Fold(_rows(con, history), _rows(con, delta))
    finally:
        con.close()
        acked_file.unlink(missing_ok=True)
        shutil.rmtree(parts, ignore_errors=True)


def concat(files: Sequence[Path], out: Path) -> None:
    """Write the rows of several recorded-changes files as one file (``CHANGE_COLUMNS``).

    A file named ``*ADDED_SUFFIX`` is a snapshot delta of added rows, read through ``DELTA_AS_HISTORY``.
    """
    con = connect(out.parent)
    try:
        parts = [
            f"select {DELTA_AS_HISTORY} from {source(con, p, 'snapshot')}" if p.name.endswith(ADDED_SUFFIX)
            else f"select {', '.join(CHANGE_COLUMNS)} from {source(con, p, 'history')}"
            for p in files
        ]
        con.execute(f"COPY ({' union all '.join(parts)}) TO '{sql_path(out)}' {PARQUET}")
    finally:
        con.close()


def lookup(files: Sequence[Path], identity: str) -> tuple[str | None, str | None, bool, str | None] | None:
    """The newest row for ``identity`` in a snapshot's files: (values_json, user_id, exited, acked_run), or None.

    One filtered scan over the files' ``id`` columns (DuckDB skips row groups whose id range
    cannot hold the value), newest file first.
    """
    if not files:
        return None
    con = connect()
    try:
        parts = [
            f"select {index} as file_index, values_json, user_id, exited, acked_run from {source(con, file, 'snapshot')} where id = $id"
            for index, file in enumerate(files)
        ]
        row = con.execute(" union all ".join(parts) + " order by file_index desc limit 1", {"id": identity}).fetchone()
    finally:
        con.close()
    if row is None:
        return None
    return (row[1], row[2], bool(row[3]), row[4])


__all__ = ["Fold", "compact", "concat", "lookup", "record_and_fold"]
