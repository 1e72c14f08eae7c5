"""The default state store: a local directory (``.traits/`` beside the config).

- history and small values in SQLite (WAL), so ``traits history`` can read while the daemon
  or another command writes;
- a lock per trait with ``filelock`` (an OS lock: released when its process dies);
- snapshots as Parquet files under a manifest (``snapshot_files.SnapshotDir``);
- acknowledgement logs as JSON lines appended and fsynced per acknowledged batch;
- each commit's changes as a Parquet file under ``history/TRAIT/DESTINATION/`` (named by
  run), written before the snapshot advances, pruned by age;
- pending exits as one Parquet file per (trait, destination) under ``pending/``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from traits.columnar import sql_path
from traits.destinations.base import Call, CallBlock
from traits.errors import LockedError, StateError
from traits.snapshot_format import Changes
from traits.state import sql
from traits.state.base import AckLog, StateStore, held_values
from traits.state.records import HeldValues, RunRecord
from traits.state.snapshot_files import SnapshotDir, finish_file

_SCHEMA = """
create table if not exists runs (
    run_id text primary key,
    trait text not null,
    started_at text not null,
    status text not null,
    record text not null
);
create index if not exists runs_by_trait on runs (trait, started_at);
create table if not exists kv (key text primary key, value text not null);
"""


def _open_sqlite(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("pragma busy_timeout=30000")
    # several processes opening a new database at once race to switch it to WAL; the switch
    # can answer "locked" at once instead of waiting, so it is tried again for a while
    deadline = time.monotonic() + 30
    while True:
        try:
            db.execute("pragma journal_mode=wal")
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    db.execute("pragma synchronous=normal")
    return db


#: the longest ack log line read (an older log's batch line of ids), and the reader's buffer
ACK_LINE_BYTES = 8 * 2**20


def acked_keys_sql(acks: Path) -> str:
    """SQL for the ids an ack log lists, one row per id (an id acknowledged twice comes twice).

    The log holds one id per line, as a JSON string (older logs: a line ``{"k": [ids…]}`` per
    batch, still read). Lines are read whole as text (no delimiter or quote can occur in one:
    JSON escapes every control character) and decoded by the JSON functions, in parallel:
    DuckDB's ``read_json`` took twice as long, and a vector of 2,048 batch lines of 20,000
    ids each did not fit its memory limit. A torn last line (a writer killed mid-append) is not
    valid JSON and is skipped; the whole lines before it were written after their calls were
    acknowledged, so each is an acknowledgement.

    The reader's buffer is bounded (``ACK_LINE_BYTES``): with a larger line limit DuckDB read a
    log smaller than that limit in one block, and a 100M-id log (1.2 GiB) did not fit the engine's
    memory limit at commit.
    """
    return (
        "select unnest(case when starts_with(line, '{') then json_extract_string(line, '$.k[*]') else [line ->> '$'] end) "
        f"from read_csv('{sql_path(acks)}', columns = {{'line': 'VARCHAR'}}, delim = '\x01', quote = '', escape = '', "
        f"header = false, max_line_size = {ACK_LINE_BYTES}, buffer_size = {ACK_LINE_BYTES}) where json_valid(line)"
    )


def _link_durably(source: Path, link: Path) -> None:
    """Give the written file ``source`` a second name, both durable (a copy where links fail)."""
    with open(source, "rb+") as f:
        os.fsync(f.fileno())
    tmp = link.with_name(link.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    finish_file(tmp, link)


class LocalAckLog(AckLog):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "ab")  # noqa: SIM115 - held open for the run's appends

    def append(self, calls: Sequence[Call]) -> None:
        if not calls:
            return
        self._write("".join(json.dumps(c.key, ensure_ascii=False) + "\n" for c in calls).encode())

    def append_block(self, block: CallBlock) -> None:
        # the engine wrote each id as a JSON string and a newline: the lines as they are
        if block.count:
            self._write(block.keys_json)

    def _write(self, lines: bytes | memoryview) -> None:
        self._file.write(lines)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


class LocalStateStore(StateStore):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.work_dir = root
        try:
            root.mkdir(parents=True, exist_ok=True)
            (root / "locks").mkdir(exist_ok=True)
        except OSError as e:
            raise StateError(f"cannot create the state directory {root}: {e.strerror}", hint="check the path and its permissions") from e
        self._local = threading.local()
        with self._db() as db:
            db.executescript(_SCHEMA)

    # -- sqlite ----------------------------------------------------------------------------
    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        path = self.root / "state.db"
        try:
            db: sqlite3.Connection | None = getattr(self._local, "db", None)
            if db is None:
                db = _open_sqlite(path)
                self._local.db = db
            yield db
        except sqlite3.Error as e:
            raise StateError(f"the state database {path} failed: {e}", hint="check the disk, or whether another program holds it") from e

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- history -----------------------------------------------------------------------------
    def save_run(self, run: RunRecord) -> None:
        with self._db() as db:
            db.execute(
                "insert into runs (run_id, trait, started_at, status, record) values (?, ?, ?, ?, ?) "
                "on conflict (run_id) do update set status = excluded.status, record = excluded.record",
                (run.run_id, run.trait, run.started_at, run.status, json.dumps(run.to_dict())),
            )

    def runs(self, trait: str | None = None, limit: int = 20, offset: int = 0) -> list[RunRecord]:
        with self._db() as db:
            if trait is None:
                rows = db.execute(
                    "select record from runs order by started_at desc, rowid desc limit ? offset ?", (limit, offset)
                ).fetchall()
            else:
                rows = db.execute(
                    "select record from runs where trait = ? order by started_at desc, rowid desc limit ? offset ?", (trait, limit, offset)
                ).fetchall()
        return [RunRecord.from_dict(json.loads(r[0])) for r in rows]

    def run(self, run_id: str) -> RunRecord | None:
        with self._db() as db:
            row = db.execute("select record from runs where run_id = ?", (run_id,)).fetchone()
        return RunRecord.from_dict(json.loads(row[0])) if row else None

    def count_runs(self, trait: str | None = None) -> int:
        with self._db() as db:
            if trait is None:
                row = db.execute("select count(*) from runs").fetchone()
            else:
                row = db.execute("select count(*) from runs where trait = ?", (trait,)).fetchone()
        return int(row[0]) if row else 0

    def interrupted_run(self, trait: str) -> RunRecord | None:
        with self._db() as db:
            row = db.execute(
                "select record from runs where trait = ? and status in ('running', 'interrupted') order by started_at desc limit 1", (trait,)
            ).fetchone()
        return RunRecord.from_dict(json.loads(row[0])) if row else None

    # -- locks -------------------------------------------------------------------------------
    # Runners contend for ``TRAIT.lock``. Readers asking who runs a trait (``status``, the
    # console) never touch it: a probe that took it, even for a moment, would make a run
    # starting at that moment fail as "already running". The holder also holds ``TRAIT.held``,
    # taken after the lock (waiting out any probe, which holds it for a moment only) and let go
    # before it; a probe tries that one.
    def _lock_files(self, trait: str) -> tuple[FileLock, FileLock]:
        locks = self.root / "locks"
        return (
            FileLock(locks / f"{trait}.lock", timeout=0, is_singleton=False),
            FileLock(locks / f"{trait}.held", timeout=-1, is_singleton=False),
        )

    @contextmanager
    def lock(self, trait: str, owner: str) -> Iterator[None]:
        lock, held = self._lock_files(trait)
        try:
            lock.acquire()
        except Timeout:
            holder = self.lock_holder(trait) or "another process"
            raise LockedError(f"trait {trait} is already running ({holder})", hint="wait for that run to finish") from None
        owner_file = self.root / "locks" / f"{trait}.owner"
        try:
            held.acquire()
            try:
                tmp = owner_file.with_name(f"{owner_file.name}.{os.getpid()}.tmp")
                tmp.write_text(owner)
                tmp.replace(owner_file)  # a reader sees the whole name or none
                yield
            finally:
                owner_file.unlink(missing_ok=True)
                held.release()
        finally:
            lock.release()

    def lock_holder(self, trait: str) -> str | None:
        held = FileLock(self.root / "locks" / f"{trait}.held", timeout=0, is_singleton=False)
        # the holder writes its name just after taking the lock and removes it just before
        # letting go: look again, briefly, when the lock is held but the name is not there
        for _ in range(50):
            try:
                held.acquire()
            except Timeout:
                try:
                    return (self.root / "locks" / f"{trait}.owner").read_text() or "another process"
                except FileNotFoundError:
                    time.sleep(0.01)
                    continue
            held.release()
            return None
        return "another process"

    # -- snapshots ---------------------------------------------------------------------------
    def _snapshot(self, trait: str, destination: str) -> SnapshotDir:
        return SnapshotDir(self.root / "snapshots" / trait / destination)

    def _ack_path(self, run_id: str, destination: str) -> Path:
        return self.run_dir(run_id) / "acks" / f"{destination}.jsonl"

    def snapshot_files(self, trait: str, destination: str) -> list[Path]:
        return self._snapshot(trait, destination).files()

    def held(self, trait: str, destination: str, identity: str) -> HeldValues | None:
        found = sql.lookup(self.snapshot_files(trait, destination), identity)
        return held_values(trait, destination, identity, found)

    def ack_log(self, run_id: str, trait: str, destination: str) -> AckLog:
        return LocalAckLog(self._ack_path(run_id, destination))

    def has_acks(self, run_id: str, trait: str, destination: str) -> bool:
        path = self._ack_path(run_id, destination)
        return path.exists() and path.stat().st_size > 0

    def commit(self, run_id: str, trait: str, destination: str, changes: Changes) -> None:
        acks = self._ack_path(run_id, destination)
        if not acks.exists() or acks.stat().st_size == 0 or not changes.exists():
            acks.unlink(missing_ok=True)
            return
        self.forget_warehouse_lineage(trait, [destination])
        snapshot = self._snapshot(trait, destination)
        snapshot.path.mkdir(parents=True, exist_ok=True)
        # one delta per commit: a resumed run commits twice (what it had acked before it was
        # killed, then the rest), and the second must not replace the first
        name = f"delta-{run_id}-{time.time_ns()}.parquet"
        tmp = snapshot.path / (name + ".tmp")
        keys = acked_keys_sql(acks)
        # the run's changes are made durable before the snapshot advances: a crash between the two
        # leaves the acks, and the next commit writes both again (a revert reads each id once)
        history = self._history_dir(trait, destination)
        history.mkdir(parents=True, exist_ok=True)
        stamp = time.time_ns()
        record = history / f"{run_id}.{stamp}.parquet"
        fold = sql.record_and_fold(changes.path, keys, record.with_name(record.name + ".tmp"), tmp, run_id)
        recorded, rows = fold.recorded, fold.rows
        if fold.delta_is_change_file:
            # a first sync's change file, every row acknowledged: it is the delta (the diff never
            # writes into a change file again: a resumed run's diff replaces it with a new file)
            _link_durably(changes.path, tmp)
        if fold.changes_in_delta:
            # every row was added: the delta is the changes too, kept under a second name
            _link_durably(tmp, history / f"{run_id}.{stamp}{sql.ADDED_SUFFIX}")
        elif recorded:
            finish_file(record.with_name(record.name + ".tmp"), record)
        else:
            record.with_name(record.name + ".tmp").unlink(missing_ok=True)
        snapshot.add(name, tmp, rows)
        # the delta is durable and listed: the log has done its work
        acks.rename(acks.with_name(f"{acks.stem}.{time.time_ns()}.committed"))

    def reset(self, trait: str, destination: str | None = None) -> list[str]:
        names = [destination] if destination else self.snapshot_destinations(trait)
        self.forget_warehouse_lineage(trait, names)
        for name in names:
            self._snapshot(trait, name).clear()
            self._pending_path(trait, name).unlink(missing_ok=True)
        return names

    def snapshot_destinations(self, trait: str) -> list[str]:
        base = self.root / "snapshots" / trait
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / "manifest.json").exists())

    # -- run changes and pending exits -------------------------------------------------------
    def _history_dir(self, trait: str, destination: str) -> Path:
        return self.root / "history" / trait / destination

    def run_changes(self, run_id: str, trait: str, destination: str, out: Path) -> bool:
        files = sorted(self._history_dir(trait, destination).glob(f"{run_id}.*.parquet"))
        if not files:
            return False
        sql.concat(files, out)
        return True

    def prune_changes(self, older_than: float) -> None:
        cutoff = time.time() - older_than
        for path in (self.root / "history").glob("*/*/*.parquet"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                pass

    def _pending_path(self, trait: str, destination: str) -> Path:
        return self.root / "pending" / trait / f"{destination}.parquet"

    def pending_exits(self, trait: str, destination: str) -> Path | None:
        path = self._pending_path(trait, destination)
        return path if path.exists() else None

    def save_pending_exits(self, trait: str, destination: str, pending: Path) -> None:
        target = self._pending_path(trait, destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(pending, tmp)
        finish_file(tmp, target)

    def find_run(self, run_id: str) -> RunRecord | None:
        with self._db() as db:
            row = db.execute("select record from runs where run_id = ?", (run_id,)).fetchone()
        return RunRecord.from_dict(json.loads(row[0])) if row else None

    # -- small values ------------------------------------------------------------------------
    def get_value(self, key: str) -> Any:
        with self._db() as db:
            row = db.execute("select value from kv where key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_value(self, key: str, value: Any) -> None:
        with self._db() as db:
            db.execute(
                "insert into kv (key, value) values (?, ?) on conflict (key) do update set value = excluded.value",
                (key, json.dumps(value)),
            )
