"""The embedded columnar engine (DuckDB) that stages, validates, diffs and folds snapshots.

Every pass over rows runs here, over Parquet files, with a memory limit and a spill
directory, never as a Python loop over rows.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
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


def delta_columns_sql(uid_sql: str, run_id: str) -> str:
    """The columns that make a file of added rows (a first sync's change file) a snapshot delta too.

    Snapshot files are read by column name, so a change file that also carries these (and
    ``id, h, v``) can be kept as the snapshot's delta once every row in it was acknowledged,
    instead of being written again (``state.sql.record_and_fold``).
    """
    run = "'" + run_id.replace("'", "''") + "'"
    return f"{uid_sql} as u, false as deleted, {HASH_CANARY_SQL} as hv, {run} as {RUN_COLUMN}"


_engine: duckdb.DuckDBPyConnection | None = None
_engine_lock = threading.Lock()


def _shared_engine(spill_dir: Path | None, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
    """The process's one engine: its memory limit and threads bound every run at once, not each.

    A daemon runs several traits together; separate engines would each take the limit (and a
    thread per core). The first caller's settings hold for the process (they come from one
    config); its spill directory is kept for the process's life.
    """
    global _engine
    import duckdb

    with _engine_lock:
        if _engine is None:
            _return_arrow_memory_promptly()
            engine = duckdb.connect(":memory:")
            limit = memory_limit or os.environ.get("TRAITS_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
            engine.execute(f"SET memory_limit = '{limit}'")
            threads = os.environ.get("TRAITS_ENGINE_THREADS")
            if threads:
                engine.execute(f"SET threads = {int(threads)}")
            spill = Path(tempfile.gettempdir()) if spill_dir is None else spill_dir.parent
            engine.execute(f"SET temp_directory = '{sql_path(spill / f'sql-traits-spill-{os.getpid()}')}'")
            _engine = engine
        return _engine


def _return_arrow_memory_promptly() -> None:
    """Let Arrow allocate with the C library's allocator instead of its own pool.

    Arrow's default pool (jemalloc) keeps freed buffers for reuse: each batch staged left its
    memory held, and a 150,000-row run peaked about 20 MB higher with it. ``ARROW_DEFAULT_MEMORY_POOL``
    still chooses, when set.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


def release_memory() -> None:
    """Give the memory freed so far back to the system: called between a run's phases.

    DuckDB allocates with a jemalloc of its own, which keeps freed pages for reuse and returns
    them only after a delay, when it next allocates; so a phase began holding what the one
    before it had freed. Purging its arenas returns those pages: a 150,000-row first sync to a
    file peaked 15-18 MB lower with this than without. Python, Arrow (the system allocator,
    ``cli.arrow_pool``) and the drivers allocate with the C library's malloc, whose free lists
    ``malloc_trim`` returns (every arena, glibc ≥ 2.8). Each is a no-op where it is missing
    (another C library, a DuckDB without the symbol); each takes a few milliseconds at most.
    """
    for purge in _purges():
        purge()


_purge_engine: Callable[[], None] | None = None


def _purges() -> list[Callable[[], None]]:
    global _purge_engine
    purges = []
    if _purge_engine is None and _engine is not None:
        _purge_engine = _jemalloc_purge() or (lambda: None)
    if _purge_engine is not None:
        purges.append(_purge_engine)
    trim = _malloc_trim()
    if trim is not None:
        purges.append(trim)
    return purges


def _jemalloc_purge() -> Callable[[], None] | None:
    """``mallctl("arena.<all>.purge")`` of the jemalloc inside DuckDB's extension module."""
    import ctypes
    import sys

    path = next((getattr(sys.modules.get(m), "__file__", None) for m in ("_duckdb", "duckdb.duckdb") if m in sys.modules), None)
    try:
        mallctl = ctypes.CDLL(path).duckdb_je_mallctl if path else None
    except (OSError, AttributeError):
        return None
    if mallctl is None:
        return None
    mallctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    mallctl.restype = ctypes.c_int
    all_arenas = b"arena.4096.purge"  # MALLCTL_ARENAS_ALL

    def purge() -> None:
        mallctl(all_arenas, None, None, None, 0)

    return purge


@functools.cache
def _malloc_trim() -> Callable[[], None] | None:
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def release() -> None:
        trim(0)

    return release


def connect(spill_dir: Path | None = None, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """A connection of its own (temp tables and registered batches are per connection) to the shared engine."""
    con = _shared_engine(spill_dir, memory_limit).cursor()
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")
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
