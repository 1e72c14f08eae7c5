"""Snapshot folding and compaction, done by the columnar engine over Parquet files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from traits.columnar import HASH_CANARY_SQL, connect, latest_rows, sql_path

if TYPE_CHECKING:
    import duckdb

PARQUET = "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"


def compact(files: Sequence[Path], out: Path) -> int:
    """Write the current rows of ``files`` as one file; returns its row count."""
    con = connect(out.parent)
    try:
        con.execute(f"COPY ({latest_rows(files)}) TO '{sql_path(out)}' {PARQUET}")
        row = con.execute(f"select count(*) from read_parquet('{sql_path(out)}')").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def fold(changes: Path, acked_keys_sql: str, out: Path) -> int:
    """Write the rows of ``changes`` whose ids ``acked_keys_sql`` lists, as a snapshot delta."""
    con = connect(out.parent)
    try:
        con.execute(
            f"""COPY (
                select c.id, c.h, c.v, c.uid as u, c.change = 'exited' as deleted, {HASH_CANARY_SQL} as hv
                from read_parquet('{sql_path(changes)}') c
                where c.id in ({acked_keys_sql})
            ) TO '{sql_path(out)}' {PARQUET}"""
        )
        row = con.execute(f"select count(*) from read_parquet('{sql_path(out)}')").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


#: a change file's rows as recorded changes (``state.base.CHANGE_COLUMNS``)
CHANGES_SELECT = (
    "id, change, old_h as before_h, old_v as before_v, old_u as before_u, "
    "case when change = 'exited' then null else h end as after_h, "
    "case when change = 'exited' then null else v end as after_v, "
    "case when change = 'exited' then null else uid end as after_u"
)
#: columns a change file written before runs kept their before values lacks (a resumed old run)
_BEFORE_COLUMNS = {"old_h": "ubigint", "old_v": "varchar", "old_u": "varchar"}


def changes_source(con: duckdb.DuckDBPyConnection, changes: Path) -> str:
    """The change file as a SQL source with every column ``CHANGES_SELECT`` reads."""
    names = {str(r[0]) for r in con.execute(f"select name from parquet_schema('{sql_path(changes)}')").fetchall()}
    missing = ", ".join(f"cast(null as {t}) as {c}" for c, t in _BEFORE_COLUMNS.items() if c not in names)
    return f"(select *{', ' + missing if missing else ''} from read_parquet('{sql_path(changes)}'))"


def record_and_fold(changes: Path, acked_keys_sql: str, history: Path, delta: Path) -> tuple[int, int]:
    """Write the acknowledged rows of ``changes`` twice, reading the acknowledgements once: as
    recorded changes (``history``) and as a snapshot delta (``delta``); returns both counts."""
    con = connect(delta.parent)
    try:
        con.execute(f"create temp table acked as select distinct * from ({acked_keys_sql}) k(id)")
        con.execute(
            f"""COPY (select {CHANGES_SELECT} from {changes_source(con, changes)} c where c.id in (select id from acked))
            TO '{sql_path(history)}' {PARQUET}"""
        )
        con.execute(
            f"""COPY (
                select c.id, c.h, c.v, c.uid as u, c.change = 'exited' as deleted, {HASH_CANARY_SQL} as hv
                from read_parquet('{sql_path(changes)}') c
                where c.id in (select id from acked)
            ) TO '{sql_path(delta)}' {PARQUET}"""
        )
        counts = [con.execute(f"select count(*) from read_parquet('{sql_path(p)}')").fetchone() for p in (history, delta)]
        return tuple(int(c[0]) if c else 0 for c in counts)  # type: ignore[return-value]
    finally:
        con.close()


def concat(files: Sequence[Path], out: Path) -> None:
    """Write the rows of several Parquet files of one layout as one file."""
    con = connect(out.parent)
    try:
        paths = "[" + ", ".join(f"'{sql_path(p)}'" for p in files) + "]"
        con.execute(f"COPY (select * from read_parquet({paths})) TO '{sql_path(out)}' {PARQUET}")
    finally:
        con.close()
