"""Run changes and pending exits in the Postgres state store (``state.base``), as a mixin.

``run_changes`` holds each commit's acknowledged rows with the values before and after
(``snapshot_format.CHANGE_COLUMNS``), recorded just before the fold (idempotent: a repeated commit
records nothing twice) and pruned by age; ``pending_exits`` holds the ids pending exit,
replaced at each commit. Both tables are created with the rest (``pg_schema``). Rows move by
COPY in CSV, converted by the columnar engine (``pg_transfer``). Like every write of a run,
these check the lock's fence (``postgres``) in their own transaction.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traits.snapshot_format import CHANGE_COLUMNS
from traits.state.pg_transfer import changes_history_csv, history_csv_to_parquet, load_csv, pending_csv_to_parquet, pending_to_csv
from traits.state.records import RunRecord

if TYPE_CHECKING:
    import psycopg

#: the recorded changes' columns (``snapshot_format.CHANGE_COLUMNS``), bare and of the staged rows ``p``
_HISTORY = ", ".join(CHANGE_COLUMNS)
_HISTORY_P = ", ".join(f"p.{c}" for c in CHANGE_COLUMNS)



class ChangeTables:
    """The part of ``PostgresStateStore`` that keeps run changes and pending exits."""

    if TYPE_CHECKING:
        s: str
        schema: str

        _fences: dict[str, Any]

        def _db(self, what: str) -> AbstractContextManager[psycopg.Connection[Any]]: ...
        def _cache_dir(self, trait: str, destination: str) -> Path: ...
        def _check_fence(self, conn: psycopg.Connection[Any], fence: Any) -> None: ...

    def _record_changes(self, run_id: str, trait: str, destination: str, changes: Path) -> None:
        """The acknowledged rows' values before and after, kept for ``traits revert`` (idempotent)."""
        csv = changes.with_name(f"{changes.name}.{os.getpid()}.history.csv")
        changes_history_csv(changes, csv)
        s, key = self.s, {"r": run_id, "t": trait, "d": destination}
        try:
            with self._db("recording a run's changes") as conn:
                self._check_fence(conn, self._fences.get(trait))  # a holder that lost its lock writes nothing
                load_csv(conn, "history_rows", "id text, change text, before_row_hash bigint, before_values_json text, "
                         "before_user_id text, after_row_hash bigint, after_values_json text, after_user_id text", csv)
                conn.execute(
                    f"""insert into {s}.run_changes (trait, destination, run_id, {_HISTORY})
                    select distinct on (p.id) %(t)s, %(d)s, %(r)s, {_HISTORY_P}
                    from history_rows p where p.id in (select id from {s}.acks where run_id = %(r)s and destination = %(d)s)
                    on conflict (trait, destination, run_id, id) do nothing""",
                    key,
                )
                conn.execute("truncate history_rows")
        finally:
            csv.unlink(missing_ok=True)

    def run_changes(self, run_id: str, trait: str, destination: str, out: Path) -> bool:
        csv = out.with_name(f"{out.name}.{os.getpid()}.csv")
        query = (
            f"copy (select {_HISTORY} from {self.s}.run_changes "
            "where run_id = %s and trait = %s and destination = %s) to stdout (format csv)"
        )
        try:
            if not self._copy_out("reading a run's changes", query, (run_id, trait, destination), csv):
                return False
            history_csv_to_parquet(csv, out)
            return True
        finally:
            csv.unlink(missing_ok=True)

    def _copy_out(self, what: str, query: str, args: tuple[str, ...], csv: Path) -> bool:
        """Write a ``copy … to stdout`` query's rows to ``csv``; whether there were any."""
        with self._db(what) as conn, conn.cursor() as cur, open(csv, "wb") as f, cur.copy(query, args) as copy:
            for chunk in copy:
                f.write(chunk)
        return csv.stat().st_size > 0

    def prune_changes(self, older_than: float) -> None:
        with self._db("pruning run changes") as conn:
            conn.execute(f"delete from {self.s}.run_changes where recorded_at < now() - make_interval(secs => %s)", (older_than,))

    def pending_exits(self, trait: str, destination: str) -> Path | None:
        cache = self._cache_dir(trait, destination)
        cache.mkdir(parents=True, exist_ok=True)
        stem = f"pending.{os.getpid()}.{threading.get_ident()}.{time.time_ns()}"
        csv, out = cache / f"{stem}.csv", cache / f"{stem}.parquet"
        query = (
            f"copy (select id, first_missing_at, misses, run_id from {self.s}.pending_exits where trait = %s and destination = %s) "
            "to stdout (format csv)"
        )
        try:
            if not self._copy_out("reading pending exits", query, (trait, destination), csv):
                return None
            pending_csv_to_parquet(csv, out)
            return out
        finally:
            csv.unlink(missing_ok=True)

    def save_pending_exits(self, trait: str, destination: str, pending: Path) -> None:
        csv = pending.with_name(f"{pending.name}.{os.getpid()}.csv")
        pending_to_csv(pending, csv)
        try:
            with self._db("saving pending exits") as conn:
                self._check_fence(conn, self._fences.get(trait))
                conn.execute(f"delete from {self.s}.pending_exits where trait = %s and destination = %s", (trait, destination))
                load_csv(conn, "pending_rows", "id text, first_missing_at text, misses integer, run_id text", csv)
                conn.execute(
                    f"insert into {self.s}.pending_exits (trait, destination, id, first_missing_at, misses, run_id) "
                    "select distinct on (id) %s, %s, id, first_missing_at, misses, run_id from pending_rows",
                    (trait, destination),
                )
                conn.execute("truncate pending_rows")
        finally:
            csv.unlink(missing_ok=True)

    def find_run(self, run_id: str) -> RunRecord | None:
        with self._db("reading history") as conn:
            row = conn.execute(f"select record from {self.s}.runs where run_id = %s", (run_id,)).fetchone()
        return RunRecord.from_dict(row[0]) if row else None
