"""Snapshot folding and compaction, done by the columnar engine over Parquet files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from traits.columnar import HASH_CANARY_SQL, connect, latest_rows, sql_path

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
