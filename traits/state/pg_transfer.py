"""Moving snapshot rows between Postgres (COPY in CSV) and local Parquet files, via DuckDB.

The conversions run in the columnar engine, never as a Python loop over rows. ``h`` and
``hv`` are unsigned 64-bit in Parquet and signed ``bigint`` in Postgres, shifted by 2**63.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from traits.columnar import HASH_CANARY_SQL, sql_path
from traits.columnar import connect as duck_connect

#: the shift between DuckDB's UBIGINT hash and Postgres's signed bigint
_SHIFT = "9223372036854775808"


def changes_to_csv(changes: Path, csv: Path) -> None:
    """A change file as CSV rows for the ``pending`` table: id, h, v, u, deleted, hv (an exit's v: the values it had)."""
    con = duck_connect(changes.parent)
    try:
        # FORCE_QUOTE: an empty string is written "" (Postgres reads a bare empty field as NULL)
        con.execute(
            f"""COPY (select id, cast(cast(h as hugeint) - {_SHIFT} as bigint) as h,
                    case when change = 'exited' then old_v else v end as v, uid as u,
                    change = 'exited' as deleted, cast(cast({HASH_CANARY_SQL} as hugeint) - {_SHIFT} as bigint) as hv
                from read_parquet('{sql_path(changes)}'))
            TO '{sql_path(csv)}' (FORMAT csv, HEADER false, FORCE_QUOTE (id, v, u))"""
        )
    finally:
        con.close()


def cache_name(version: object, token: object) -> str:
    """The listing (JSON: the Parquet file names) of one version of a snapshot in the cache."""
    return f"{int(str(version)):012d}-{token}.json"


def csv_to_parquet(csv: Path, listing: Path) -> list[str]:
    """Convert an exported snapshot to Parquet, one file per hash canary; returns the file names."""
    con = duck_connect(listing.parent)
    try:
        # allow_quoted_nulls = false: Postgres writes NULL bare and an empty string as ""
        con.execute(
            f"""create temp table rows as select * from read_csv('{sql_path(csv)}', header = false, quote = '"', escape = '"',
                allow_quoted_nulls = false, columns = {{'id': 'VARCHAR', 'h': 'BIGINT', 'v': 'VARCHAR', 'u': 'VARCHAR', 'hv': 'BIGINT'}})"""
        )
        groups = [r[0] for r in con.execute("select distinct hv from rows order by hv nulls first").fetchall()] or [None]
        names = []
        for index, hv in enumerate(groups):
            name = f"{listing.stem}-{index}.parquet"
            tmp = listing.with_name(f"{name}.{os.getpid()}.{threading.get_ident()}.tmp")
            where = "hv is null" if hv is None else f"hv = {int(hv)}"
            con.execute(
                f"""COPY (select id, cast(cast(h as hugeint) + {_SHIFT} as ubigint) as h, v, u, false as deleted,
                        cast(cast(hv as hugeint) + {_SHIFT} as ubigint) as hv
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


#: recorded changes as CSV for Postgres, and the layout read back (``state.base.CHANGE_COLUMNS``)
_CHANGE_CSV_COLUMNS = {
    "id": "VARCHAR", "change": "VARCHAR", "before_h": "BIGINT", "before_v": "VARCHAR", "before_u": "VARCHAR",
    "after_h": "BIGINT", "after_v": "VARCHAR", "after_u": "VARCHAR",
}
_PENDING_CSV_COLUMNS = {"id": "VARCHAR", "first_missing_at": "VARCHAR", "misses": "INTEGER", "run_id": "VARCHAR"}


def _signed(column: str) -> str:
    return f"cast(cast({column} as hugeint) - {_SHIFT} as bigint)"


def _unsigned(column: str) -> str:
    return f"cast(cast({column} as hugeint) + {_SHIFT} as ubigint)"


def changes_history_csv(changes: Path, csv: Path) -> None:
    """A change file's rows as recorded changes, CSV for ``copy ... from stdin``."""
    from traits.state.sql import CHANGES_SELECT, changes_source

    con = duck_connect(changes.parent)
    try:
        con.execute(
            f"""COPY (select id, change, {_signed("before_h")} as before_h, before_v, before_u, {_signed("after_h")} as after_h, after_v, after_u
                from (select {CHANGES_SELECT} from {changes_source(con, changes)}))
            TO '{sql_path(csv)}' (FORMAT csv, HEADER false, FORCE_QUOTE (id, change, before_v, before_u, after_v, after_u))"""
        )
    finally:
        con.close()


def history_csv_to_parquet(csv: Path, out: Path) -> None:
    _csv_to_parquet(
        csv, out, _CHANGE_CSV_COLUMNS,
        f"id, change, {_unsigned('before_h')} as before_h, before_v, before_u, {_unsigned('after_h')} as after_h, after_v, after_u",
    )


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
