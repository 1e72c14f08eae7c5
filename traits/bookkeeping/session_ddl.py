"""DDL held back to the end of a transaction, for engines whose transactions cannot hold DDL.

Snowflake commits an open transaction before a DDL statement; BigQuery refuses DDL on
permanent tables inside one. Either way a transaction with DDL in it would not be one. So, in
their sessions, DDL met inside ``transaction`` waits and runs, in order, once the DML has
committed (and not at all if it rolled back). The differ's only such use is a reseed's swap of
the snapshot table after its ``snapshots`` row: the row commits first, the swap follows, and the
local store renews its lineage only after both, so a kill in between makes the next run reseed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

_DDL = re.compile(r"^\s*(create|drop|alter)\b", re.I)


def is_ddl(sql: str) -> bool:
    return bool(_DDL.match(sql))


class DeferredDDL:
    def __init__(self) -> None:
        self._held: list[tuple[str, Sequence[Any]]] | None = None

    def hold(self, sql: str, params: Sequence[Any]) -> bool:
        """True if ``sql`` is DDL inside a transaction: it waits for the commit."""
        if self._held is not None and is_ddl(sql):
            self._held.append((sql, params))
            return True
        return False

    @contextlib.contextmanager
    def transaction(self, begin: Callable[[], Any], commit: Callable[[], Any], rollback: Callable[[], Any],
                    run: Callable[[str, Sequence[Any]], Any]) -> Iterator[None]:
        from traits.errors import WarehouseError

        self._held = []
        try:
            begin()
            try:
                yield
            except BaseException:
                with contextlib.suppress(WarehouseError):
                    rollback()
                raise
            commit()
            held, self._held = self._held, None
            for sql, params in held:
                run(sql, params)
        finally:
            self._held = None
