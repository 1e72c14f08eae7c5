"""Moving snapshot rows between Postgres (COPY in CSV) and local Parquet files, via DuckDB.

The conversions run in the columnar engine, never as a Python loop over rows. ``row_hash`` and
``hash_canary`` are unsigned 64-bit in Parquet and signed ``bigint`` in Postgres, shifted by 2**63.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traits.columnar import connect as duck_connect
from traits.columnar import sql_path
from traits.snapshot_format import CHANGE_COLUMNS, CHANGES_AS_HISTORY, CHANGES_AS_SNAPSHOT, source

if TYPE_CHECKING:
    import psycopg

#: bytes per write of a COPY
COPY_CHUNK = 1 << 20
#: the shift between DuckDB's UBIGINT hash and Postgres's signed bigint
_SHIFT = "9223372036854775808"


def changes_to_csv(changes: Path, csv: Path) -> None:
    """A change file as CSV rows for the ``pending`` table: its rows as a snapshot delta's (an exit's values: those it had)."""
    con = duck_connect(changes.parent)
    try:
        # FORCE_QUOTE: an empty string is written "" (Postgres reads a bare empty field as NULL)
        con.execute(
            f"""COPY (select id, {_signed("row_hash")} as row_hash, values_json, user_id, exited, {_signed("hash_canary")} as hash_canary
                from (select {CHANGES_AS_SNAPSHOT} from {source(con, changes, "changes")}))
            TO '{sql_path(csv)}' (FORMAT csv, HEADER false, FORCE_QUOTE (id, values_json, user_id))"""
        )
    finally:
        con.close()


def load_csv(conn: psycopg.Connection[Any], table: str, columns: str, csv: Path) -> None:
    """Fill the session's temp ``table`` (``columns``: its DDL) with the rows of ``csv``, replacing what it held."""
    conn.execute(f"create temp table if not exists {table} ({columns})")
    conn.execute(f"truncate {table}")
    with conn.cursor() as cur, cur.copy(f"copy {table} from stdin (format csv)") as copy, open(csv, "rb") as f:
        while chunk := f.read(COPY_CHUNK):
            copy.write(chunk)


def cache_name(version: object, token: object) -> str:
    """The listing (JSON: the Parquet file names) of one version of a snapshot in the cache."""
    return f"{int(str(version)):012d}-{token}.json"


def csv_to_parquet(csv: Path, listing: Path) -> list[str]:
    """Convert an exported snapshot (id, row_hash, values_json, user_id, hash_canary) to Parquet, one file per
    hash canary; returns the file names."""
    con = duck_connect(listing.parent)
    try:
        # allow_quoted_nulls = false: Postgres writes NULL bare and an empty string as ""
        con.execute(
            f"""create temp table rows as select * from read_csv('{sql_path(csv)}', header = false, quote = '"', escape = '"',
                allow_quoted_nulls = false,
                columns = {{'id': 'VARCHAR', 'row_hash': 'BIGINT', 'values_json': 'VARCHAR', 'user_id': 'VARCHAR', 'hash_canary': 'BIGINT'}})"""
        )
        groups = [r[0] for r in con.execute("select distinct hash_canary from rows order by hash_canary nulls first").fetchall()] or [None]
        names = []
        for index, canary in enumerate(groups):
            name = f"{listing.stem}-{index}.parquet"
            tmp = listing.with_name(f"{name}.{os.getpid()}.{threading.get_ident()}.tmp")
            where = "hash_canary is null" if canary is None else f"hash_canary = {int(canary)}"
            con.execute(
                f"""COPY (select id, {_unsigned("row_hash")} as row_hash, values_json, user_id, false as exited,
                        {_unsigned("hash_canary")} as hash_canary
                    from rows where {where}) TO '{sql_path(tmp)}' (FORMAT parquet, COMPRESSION zstd)"""
            )
            os.replace(tmp, listing.with_name(name))
            names.append(name)
        return names
    finally:
        con.close()


def write_listing(listing: Path, names: list[str]) -> None:
    """Written last and atomically: a listing names only whole files."""
    tmp = listing.with_name(f"{listing.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(names))
    os.replace(tmp, listing)


#: recorded changes as CSV for Postgres, and the layout read back (``snapshot_format.CHANGE_COLUMNS``)
_CHANGE_CSV_COLUMNS = {
    "id": "VARCHAR", "change": "VARCHAR", "before_row_hash": "BIGINT", "before_values_json": "VARCHAR", "before_user_id": "VARCHAR",
    "after_row_hash": "BIGINT", "after_values_json": "VARCHAR", "after_user_id": "VARCHAR",
}
_PENDING_CSV_COLUMNS = {"id": "VARCHAR", "first_missing_at": "VARCHAR", "misses": "INTEGER", "run_id": "VARCHAR"}


def _signed(column: str) -> str:
    return f"cast(cast({column} as hugeint) - {_SHIFT} as bigint)"


def _unsigned(column: str) -> str:
    return f"cast(cast({column} as hugeint) + {_SHIFT} as ubigint)"


#: recorded changes with their hashes as Postgres stores them
_HISTORY_SIGNED = ", ".join(_signed(c) + f" as {c}" if c.endswith("_row_hash") else c for c in CHANGE_COLUMNS)


def changes_history_csv(changes: Path, csv: Path) -> None:
    """A change file's rows as recorded changes, CSV for ``copy ... from stdin``."""
    con = duck_connect(changes.parent)
    try:
        con.execute(
            f"""COPY (select {_HISTORY_SIGNED} from (select {CHANGES_AS_HISTORY} from {source(con, changes, "changes")}))
            TO '{sql_path(csv)}' (FORMAT csv, HEADER false,
                FORCE_QUOTE (id, change, before_values_json, before_user_id, after_values_json, after_user_id))"""
        )
    finally:
        con.close()


def history_csv_to_parquet(csv: Path, out: Path) -> None:
    _csv_to_parquet(csv, out, _CHANGE_CSV_COLUMNS, ", ".join(_unsigned(c) + f" as {c}" if c.endswith("_row_hash") else c for c in CHANGE_COLUMNS))


def pending_to_csv(pending: Path, csv: Path) -> None:
    con = duck_connect(pending.parent)
    try:
        con.execute(
            f"""COPY (select id, first_missing_at, misses, run_id from read_parquet('{sql_path(pending)}'))
            TO '{sql_path(csv)}' (FORMAT csv, HEADER false, FORCE_QUOTE (id, first_missing_at, run_id))"""
        )
    finally:
        con.close()


def pending_csv_to_parquet(csv: Path, out: Path) -> None:
    _csv_to_parquet(csv, out, _PENDING_CSV_COLUMNS, "id, first_missing_at, misses, run_id")


def _csv_to_parquet(csv: Path, out: Path, columns: dict[str, str], select: str) -> None:
    con = duck_connect(out.parent)
    try:
        spec = "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"
        tmp = out.with_name(f"{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        con.execute(
            f"""COPY (select {select} from read_csv('{sql_path(csv)}', header = false, quote = '"', escape = '"',
                    allow_quoted_nulls = false, columns = {spec}))
            TO '{sql_path(tmp)}' (FORMAT parquet, COMPRESSION zstd)"""
        )
        os.replace(tmp, out)
    finally:
        con.close()
