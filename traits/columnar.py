"""The embedded columnar engine (DuckDB) that stages, validates, diffs and folds snapshots.

Every pass over rows runs here, over Parquet files, with a memory limit and a spill
directory, never as a Python loop over rows.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

DEFAULT_MEMORY_LIMIT = "512MB"
#: bump when the row-hash normalization (``pipeline.types``) changes, so old hashes are recomputed
HASH_SCHEME = "sql-traits/h1"
#: SQL for a value that changes whenever the engine's hash function (or our scheme) does
HASH_CANARY_SQL = f"hash('{HASH_SCHEME}')"
#: the columns of a snapshot file: id, h (row hash), v (canonical JSON), u (an account's user
#: id), deleted (an exit), hv (the hash canary of the engine that computed h)
SNAPSHOT_SELECT = "id, h, v, u, deleted, hv"
#: the run that got a snapshot row acknowledged; files written before it was kept lack it
RUN_COLUMN = "r"


def connect(spill_dir: Path | None = None, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    import duckdb

    con = duckdb.connect(":memory:")
    limit = memory_limit or os.environ.get("TRAITS_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
    con.execute(f"SET memory_limit = '{limit}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")
    if spill_dir is not None:
        spill_dir.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = '{sql_path(spill_dir / 'spill')}'")
    return con


def sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def sql_list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join(f"'{sql_path(p)}'" for p in paths) + "]"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def latest_rows(
    files: Sequence[Path], columns: str = SNAPSHOT_SELECT, per_file: Mapping[Path, str] | None = None, *, keep_deleted: bool = False
) -> str:
    """SQL for the current rows of a snapshot: a later file's row for an id wins; deleted ones dropped.

    Written as anti joins of each file against the files after it, which is cheap when the
    first file is large and the later ones small (the shape compaction keeps). ``per_file``
    replaces the select list for some files (to rehash rows an older engine hashed).
    ``keep_deleted`` keeps the exits (compaction keeps them, so a profile can say an id exited).
    """
    if not files:
        return (
            "select cast(null as varchar) as id, cast(null as ubigint) as h, cast(null as varchar) as v, "
            "cast(null as varchar) as u, false as deleted, cast(null as ubigint) as hv where false"
        )
    parts = []
    for index, file in enumerate(files):
        later = files[index + 1 :]
        source = f"read_parquet('{sql_path(file)}')"
        select = (per_file or {}).get(file, columns)
        if later:
            parts.append(f"select {select} from {source} where id not in (select id from read_parquet({sql_list(later)}))")
        else:
            parts.append(f"select {select} from {source}")
    union = "\nunion all\n".join(parts)
    return f"select * from (\n{union}\n)" + ("" if keep_deleted else " where not deleted")
