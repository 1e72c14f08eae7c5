"""The embedded columnar engine (DuckDB) that stages, validates, diffs and folds snapshots.

Every pass over rows runs here, over Parquet files, with a memory limit and a spill
directory, never as a Python loop over rows. What those files hold is ``snapshot_format``'s.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence
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
