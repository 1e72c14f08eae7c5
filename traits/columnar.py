"""The embedded columnar engine (DuckDB) that stages, validates, diffs and folds snapshots.

Every pass over rows runs here, over Parquet files, with a memory limit and a spill
directory, never as a Python loop over rows. What those files hold is ``snapshot_format``'s.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

DEFAULT_MEMORY_LIMIT = "512MB"

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


_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50,
          "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15}


def memory_limit_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """The engine's memory limit in bytes (the engine shows it as text, ``488.2 MiB``)."""
    row = con.execute("select value from duckdb_settings() where name = 'memory_limit'").fetchone()
    number, _, unit = str(row[0] if row else "").partition(" ")
    try:
        return int(float(number) * _UNITS[unit])
    except (KeyError, ValueError):
        return 2**62  # no limit the engine spells: as good as none


#: bytes of engine memory one row of a join side needs, beyond its id's text: at 10M rows with
#: two threads the join ran in 96 MB and not in 64 MB; this allows twice that
JOIN_ROW_BYTES = 20
#: the most passes a join is split into
MAX_JOIN_PASSES = 64


def join_passes(rows: int, id_bytes: float, memory_limit: int) -> int:
    """How many passes a join of ``rows`` rows (both sides) takes so that each fits the engine's memory limit."""
    need = rows * (JOIN_ROW_BYTES + max(id_bytes - 12, 0))  # ids of up to 12 bytes are held inline
    return max(1, min(MAX_JOIN_PASSES, math.ceil(need / memory_limit)))
