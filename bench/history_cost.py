"""The disk a run's recorded changes take (what ``traits revert`` needs), per changed row.

Builds a change file of N changed rows of a typical 4-trait row, acknowledges them all, commits
through the local store, and prints the size of the recorded changes. Usage:
    python bench/history_cost.py [ROWS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from traits.columnar import connect, sql_path
from traits.destinations.base import Call
from traits.snapshot_format import Changes
from traits.state.local import LocalStateStore


def main(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        changes = root / "changes.parquet"
        con = connect(root)
        con.execute(
            f"""COPY (select 'user-' || g as id, 'changed' as change, hash(g) as row_hash,
                    '{{"active":true,"open_tickets":' || (g % 17) || ',"plan":"' || (['free','pro','team'])[g % 3 + 1]
                        || '","score":' || (g % 1000) || '}}' as values_json,
                    cast(null as varchar) as user_id,
                    '{{"active":false,"open_tickets":' || (g % 13) || ',"plan":"free","score":' || (g % 999) || '}}' as old_values_json,
                    hash(g + 1) as old_row_hash, cast(null as varchar) as old_user_id
                from range({rows}) t(g)) TO '{sql_path(changes)}' (FORMAT parquet)"""
        )
        ids = [r[0] for r in con.execute(f"select id from read_parquet('{sql_path(changes)}')").fetchall()]
        con.close()
        store = LocalStateStore(root / "state")
        log = store.ack_log("r1", "t", "d")
        for i in range(0, len(ids), 10_000):
            log.append([Call(key=k, change="changed", message_id="", body=b"") for k in ids[i : i + 10_000]])
        log.close()
        started = time.monotonic()
        store.commit("r1", "t", "d", Changes(changes))
        took = time.monotonic() - started
        size = sum(p.stat().st_size for p in (root / "state" / "history").rglob("*.parquet"))
        snapshot = sum(p.stat().st_size for p in (root / "state" / "snapshots").rglob("*.parquet"))
        print(f"rows changed: {rows:,}")
        print(f"recorded changes: {size:,} bytes ({size / rows:.1f} bytes per changed row)")
        print(f"snapshot delta of the same commit: {snapshot:,} bytes ({snapshot / rows:.1f} bytes per row)")
        print(f"commit (record + fold): {took:.2f} s")
        store.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
