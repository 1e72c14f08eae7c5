"""The one interface every warehouse implements.

A warehouse runs one SQL statement in a read-only session and streams the result as Arrow
record batches. Engines differ only in how they connect, fetch and name their errors; all
type mapping to JSON happens later, the same way for every engine (``pipeline.normalize``).

Batches are made portable first (``arrow_types.portable_batch``): JSON text is the
``arrow.json`` extension type (or carries the ``JSON_TEXT`` marker), exact decimals that the
driver gives as text carry the ``DECIMAL_TEXT`` marker.
"""

from __future__ import annotations

import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from traits.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

    from traits.config.models import SourceBase

APPLICATION_NAME = "sql-traits"


class Warehouse(ABC):
    """A read-only connection to one configured source."""

    #: the engine's name for a text type, in casts this module writes
    text_type = "varchar"

    def __init__(self, name: str, config: SourceBase, config_dir: Path) -> None:
        self.name = name
        self.config = config
        self.config_dir = config_dir
        #: stops the query ``stream`` is running, from another thread (set while one runs)
        self._canceller: Callable[[], None] | None = None

    def cancel(self) -> None:
        """Ask the warehouse to stop the running query (a result already rejected); best effort."""
        canceller = self._canceller
        if canceller is not None:
            with contextlib.suppress(Exception):
                canceller()

    @abstractmethod
    def stream(self, sql: str, *, max_rows: int) -> Iterator[pa.RecordBatch]:
        """Run ``sql`` read-only and yield its rows as record batches.

        At most ``max_rows + 1`` rows are read: one row past the cap is enough for the caller
        to reject the result, and the warehouse stops the query there (see ``limited``).
        Raises ``WarehouseError`` with a one-line message and what to do.
        """

    @abstractmethod
    def check(self) -> list[str]:
        """Connect, run a trivial query, and describe what the configured user can read."""

    @property
    def user(self) -> str | None:
        """The role the source logs in as, where the engine has one to grant to (None: unknown)."""
        return None

    def known_ids(self, table: str, column: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` appear in ``table.column`` (for preview's ✓ / ? marks)."""
        if not ids:
            return set()
        literals = ", ".join(self.literal(i) for i in ids)
        text = self.text_type
        sql = f"select cast({column} as {text}) as id from {table} where cast({column} as {text}) in ({literals})"
        found: set[str] = set()
        for batch in self.stream(sql, max_rows=len(ids) * 10):
            found.update(str(v) for v in batch.column(0).to_pylist() if v is not None)
        return found

    def literal(self, value: str) -> str:
        """``value`` as a string literal of the engine's SQL."""
        return quote_literal(value)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection; the default holds none between calls."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


_TRAILING = re.compile(r"[\s;]+$")


def limited(sql: str, max_rows: int) -> str:
    """``sql`` wrapped so the warehouse itself stops one row past ``max_rows``."""
    return f"select * from (\n{strip_sql(sql)}\n) as sql_traits_result limit {int(max_rows) + 1}"


def strip_sql(sql: str) -> str:
    """``sql`` without a trailing semicolon or ``-- comment``, ready to be a subquery."""
    return _TRAILING.sub("", strip_comments_at_end(sql))


def strip_comments_at_end(sql: str) -> str:
    """Drop a trailing ``-- comment`` line, which would swallow the closing parenthesis."""
    lines = sql.rstrip().splitlines()
    while lines and lines[-1].strip().startswith("--"):
        lines.pop()
    return "\n".join(lines)


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def missing_driver(package: str, extra: str) -> ConfigError:
    return ConfigError(
        f"the {extra} source needs the {package} driver, which is not installed",
        hint=f"pip install 'sql-traits[{extra}]'",
    )


def resolve_path(config_dir: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else config_dir / path


def fmt_error(error: BaseException) -> str:
    """The first line of a driver error, without the driver's noise."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
