"""The state store in a Postgres schema, for a daemon that must survive losing its disk.

Same contract as the local store (``traits.state.base``), in a schema (``sql_traits`` unless
the DSN says ``?schema=name``) created on first use:

- ``runs`` and ``kv``: history and the scheduler's small values, as JSON;
- a lock per trait: ``pg_try_advisory_lock`` held on a session of its own for the whole run,
  so Postgres releases it when the holder's connection ends (its process died, its host
  vanished: the session sets TCP keepalives). The lock is *fenced*: each holder gets a new
  ``epoch`` in ``locks``, and every write a run makes (its record, each ack batch, the commit)
  checks, in its own transaction, that the epoch is still its own and that its lock session
  still holds the lock; a run that lost its lock stops there and commits nothing. A holder
  also keeps a second session (the *keeper*) open while it runs: a runner that finds the lock
  free but the previous holder's keeper still connected refuses to take over (the holder is
  alive, and stops at its next write). The keeper pings both sessions, so idle-session
  timeouts do not end them and a lost lock is noticed between writes too (``pg_locks``);
- ``snapshot_rows`` (trait, destination, id) → row_hash, values_json, user_id, hash_canary:
  the snapshot itself (``snapshot_format``'s columns, ``hash_canary`` per row as rows may be
  folded by different engine versions), with ``snapshots`` giving each one a version and a
  random token that change on every commit or reset;
- ``acks``: the acknowledged ids of each run and destination, committed per ``append``;
- ``acked_run`` on a snapshot row names the run that got it acknowledged, and ``exited_rows`` keeps
  the last exit of each id (with the values it had) until it comes back: what a profile reads;
- ``run_changes``: each commit's changes, values before and after (``snapshot_format.CHANGE_COLUMNS``),
  recorded before the fold and pruned by age; ``pending_exits``: the ids pending exit.

The pipeline diffs over local Parquet files, so ``snapshot_files`` exports the current
snapshot to a cache under ``work_dir`` named by its token (an unchanged snapshot is not
exported again), one file per ``hash_canary`` (the differ rehashes a file whose canary is
not its own). Bulk moves go through COPY in CSV, converted by the columnar engine, so no
Python loop ever touches the rows. ``row_hash`` and ``hash_canary`` are unsigned 64-bit; they
are stored in signed ``bigint`` shifted by 2**63.

The tables, and the migration of a store of an earlier layout when it is opened, are
``pg_schema``'s.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from traits.config.env import redact
from traits.destinations.base import Call
from traits.errors import LockLostError, StateError
from traits.snapshot_format import Changes
from traits.state.base import AckLog, StateStore, held_values
from traits.state.pg_changes import ChangeTables
from traits.state.pg_locks import Fence, FencedLocks
from traits.state.pg_schema import create_or_migrate, is_current
from traits.state.pg_transfer import cache_name, changes_to_csv, csv_to_parquet, load_csv, write_listing
from traits.state.records import HeldValues, RunRecord

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("traits.state")

DEFAULT_SCHEMA = "sql_traits"
#: cache files of older snapshot versions are kept this long for readers still using them
CACHE_GRACE_SECONDS = 3600.0



def split_dsn(dsn: str) -> tuple[str, str]:
    """The DSN libpq accepts and the schema (``?schema=`` is ours, libpq would refuse it)."""
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), DEFAULT_SCHEMA)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def describe_dsn(dsn: str) -> str:
    """Where the store is, without credentials."""
    parts = urlsplit(dsn)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{host}{port}{parts.path}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresAckLog(AckLog):
    """Acknowledged ids, one transaction per ``append`` on a connection of the log's own."""

    def __init__(self, store: PostgresStateStore, run_id: str, trait: str, destination: str) -> None:
        self.store = store
        self.key = (run_id, trait, destination)
        self._fence = store.fence(trait)
        self._conn = store._connect(autocommit=False)

    def append(self, calls: Sequence[Call]) -> None:
        if not calls:
            return
        with self.store._errors("recording acknowledgements"):
            try:
                self.store._check_fence(self._conn, self._fence)
            except LockLostError:
                self._conn.rollback()
                raise
            table = f"{self.store.s}.acks"
            with self._conn.cursor() as cur, cur.copy(f"copy {table} (run_id, trait, destination, id) from stdin") as copy:
                for call in calls:
                    copy.write_row((*self.key, call.key))
            self._conn.commit()

    def close(self) -> None:
        self._conn.close()


class PostgresStateStore(FencedLocks, ChangeTables, StateStore):
    def __init__(self, dsn: str, work_dir: Path, schema: str | None = None) -> None:
        try:
            import psycopg  # noqa: F401 - fail here, with the install hint
        except ImportError:
            raise StateError(
                "the Postgres state store needs psycopg", hint="pip install 'sql-traits[postgres]'"
            ) from None
        self.dsn, dsn_schema = split_dsn(dsn)
        self.schema = schema or dsn_schema
        self.s = _ident(self.schema)
        self.where = f"{describe_dsn(self.dsn)} (schema {self.schema})"
        self.work_dir = work_dir
        self._mutex = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        #: the fence of each lock this store holds now, by trait
        self._fences: dict[str, Fence] = {}
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StateError(f"cannot create the work directory {work_dir}: {e.strerror}") from e
        self._create_schema()

    # -- connections -----------------------------------------------------------------------
    def _connect(self, autocommit: bool = True) -> psycopg.Connection[Any]:
        import psycopg

        try:
            return psycopg.connect(self.dsn, autocommit=autocommit, application_name="sql-traits", connect_timeout=10)
        except psycopg.Error as e:
            raise StateError(
                f"cannot connect to the state store {self.where}: {redact(str(e)).strip()}",
                hint="check settings.state (or TRAITS_STATE) and that the server is running",
            ) from e

    @contextmanager
    def _db(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        """The store's shared connection (reopened if it broke), one transaction per use."""
        with self._mutex, self._errors(what):
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = self._connect()
            with self._conn.transaction():
                yield self._conn

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        import psycopg

        try:
            yield
        except psycopg.Error as e:
            raise StateError(f"the state store {self.where} failed {what}: {redact(str(e)).strip()}") from e

    def _create_schema(self) -> None:
        """Create the store's tables, or migrate an earlier layout's (``pg_schema``)."""
        with self._db("reading its schema") as conn:
            if is_current(conn, self.schema):
                return
        with self._db("creating its schema") as conn:
            create_or_migrate(conn, self.schema, self.s)

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- history ---------------------------------------------------------------------------
    def save_run(self, run: RunRecord) -> None:
        from psycopg.types.json import Jsonb

        with self._db("saving a run") as conn:
            self._check_fence(conn, self._fences.get(run.trait))
            conn.execute(
                f"insert into {self.s}.runs (run_id, trait, started_at, status, record) values (%s, %s, %s, %s, %s) "
                "on conflict (run_id) do update set status = excluded.status, record = excluded.record",
                (run.run_id, run.trait, run.started_at, run.status, Jsonb(run.to_dict())),
            )

    def runs(self, trait: str | None = None, limit: int = 20, offset: int = 0) -> list[RunRecord]:
        where = "where trait = %(trait)s" if trait is not None else ""
        with self._db("reading history") as conn:
            rows = conn.execute(
                f"select record from {self.s}.runs {where} order by started_at desc, seq desc limit %(limit)s offset %(offset)s",
                {"trait": trait, "limit": limit, "offset": offset},
            ).fetchall()
        return [RunRecord.from_dict(r[0]) for r in rows]

    def run(self, run_id: str) -> RunRecord | None:
        with self._db("reading history") as conn:
            row = conn.execute(f"select record from {self.s}.runs where run_id = %s", (run_id,)).fetchone()
        return RunRecord.from_dict(row[0]) if row else None

    def count_runs(self, trait: str | None = None) -> int:
        where = "where trait = %(trait)s" if trait is not None else ""
        with self._db("reading history") as conn:
            row = conn.execute(f"select count(*) from {self.s}.runs {where}", {"trait": trait}).fetchone()
        return int(row[0]) if row else 0

    def interrupted_run(self, trait: str) -> RunRecord | None:
        with self._db("reading history") as conn:
            row = conn.execute(
                f"select record from {self.s}.runs where trait = %s and status in ('running', 'interrupted') order by started_at desc, seq desc limit 1",
                (trait,),
            ).fetchone()
        return RunRecord.from_dict(row[0]) if row else None

    # -- snapshots -------------------------------------------------------------------------
    def _cache_dir(self, trait: str, destination: str) -> Path:
        store = hashlib.blake2b(f"{describe_dsn(self.dsn)}\0{self.schema}".encode(), digest_size=6).hexdigest()
        return self.work_dir / "pg-cache" / store / trait / destination

    def snapshot_files(self, trait: str, destination: str) -> list[Path]:
        with self._db("reading a snapshot") as conn:
            row = conn.execute(
                f"select version, token from {self.s}.snapshots where trait = %s and destination = %s", (trait, destination)
            ).fetchone()
        if row is None:
            return []
        cache = self._cache_dir(trait, destination)
        listing = cache / cache_name(row[0], row[1])
        if not listing.exists():
            exported = self._export(trait, destination, cache)
            if exported is None:  # reset meanwhile
                return []
            listing = exported
        files = [cache / name for name in json.loads(listing.read_text())]
        for path in (listing, *files):
            os.utime(path)  # marks them in use, so ``_prune`` leaves them for a while
        self._prune(cache, keep={listing, *files})
        return files

    def _export(self, trait: str, destination: str, cache: Path) -> Path | None:
        """Write the snapshot as it is now to the cache; returns its listing, None if there is none."""
        cache.mkdir(parents=True, exist_ok=True)
        stem = f"export.{os.getpid()}.{threading.get_ident()}"
        csv = cache / f"{stem}.csv"
        try:
            with self._errors("exporting a snapshot"):
                conn = self._connect(autocommit=False)
                try:
                    # repeatable read: the version and the rows come from one moment
                    conn.execute("set transaction isolation level repeatable read")
                    row = conn.execute(
                        f"select version, token from {self.s}.snapshots where trait = %s and destination = %s", (trait, destination)
                    ).fetchone()
                    if row is None:
                        return None
                    listing = cache / cache_name(row[0], row[1])
                    query = (
                        f"copy (select id, row_hash, values_json, user_id, hash_canary from {self.s}.snapshot_rows "
                        "where trait = %s and destination = %s) "
                        "to stdout (format csv)"
                    )
                    with conn.cursor() as cur, open(csv, "wb") as out, cur.copy(query, (trait, destination)) as copy:
                        for chunk in copy:
                            out.write(chunk)
                finally:
                    conn.close()
            names = csv_to_parquet(csv, listing)
            write_listing(listing, names)
            return listing
        finally:
            csv.unlink(missing_ok=True)

    def _prune(self, cache: Path, keep: set[Path]) -> None:
        """Drop older versions once nobody has used them for a while (a preview may still read one)."""
        cutoff = time.time() - CACHE_GRACE_SECONDS
        for old in [*cache.glob("*.parquet"), *cache.glob("*.json")]:
            try:
                if old not in keep and old.stat().st_mtime < cutoff:
                    old.unlink()
            except FileNotFoundError:
                pass

    def held(self, trait: str, destination: str, identity: str) -> HeldValues | None:
        key = {"t": trait, "d": destination, "i": identity}
        with self._db("reading a snapshot") as conn:  # both by primary key
            row = conn.execute(
                f"""select values_json, user_id, false, acked_run from {self.s}.snapshot_rows
                where trait = %(t)s and destination = %(d)s and id = %(i)s
                union all
                select values_json, user_id, true, acked_run from {self.s}.exited_rows
                where trait = %(t)s and destination = %(d)s and id = %(i)s
                limit 1""",
                key,
            ).fetchone()
        return held_values(trait, destination, identity, (row[0], row[1], bool(row[2]), row[3]) if row else None)

    def ack_log(self, run_id: str, trait: str, destination: str) -> AckLog:
        return PostgresAckLog(self, run_id, trait, destination)

    def has_acks(self, run_id: str, trait: str, destination: str) -> bool:
        with self._db("reading acknowledgements") as conn:
            row = conn.execute(
                f"select exists (select 1 from {self.s}.acks where run_id = %s and destination = %s)", (run_id, destination)
            ).fetchone()
        return bool(row and row[0])

    def commit(self, run_id: str, trait: str, destination: str, changes: Changes) -> None:
        if not self.has_acks(run_id, trait, destination):
            return
        self.forget_warehouse_lineage(trait, [destination])
        path = changes.path
        csv = path.with_name(f"{path.name}.{os.getpid()}.commit.csv")
        if changes.exists():
            self._record_changes(run_id, trait, destination, path)
            changes_to_csv(path, csv)
        try:
            self._fold(run_id, trait, destination, csv if changes.exists() else None)
        finally:
            csv.unlink(missing_ok=True)

    def _fold(self, run_id: str, trait: str, destination: str, csv: Path | None) -> None:
        """In one transaction: apply the acknowledged rows, forget the acks, bump the version."""
        s, key = self.s, {"r": run_id, "t": trait, "d": destination}
        with self._db("committing a snapshot") as conn:
            self._check_fence(conn, self._fences.get(trait))
            if csv is not None:
                load_csv(conn, "pending", "id text, row_hash bigint, values_json text, user_id text, exited boolean, hash_canary bigint", csv)
                conn.execute("analyze pending")  # a temp table has no statistics: the joins below need them
                acked = f"p.id in (select id from {s}.acks where run_id = %(r)s and destination = %(d)s)"
                # the profile's record of exits: an exit replaces it, a return removes it (each
                # statement only when there is something for it, so a first sync pays nothing)
                has_exits, has_exited = conn.execute(
                    f"""select exists (select 1 from pending where exited),
                        exists (select 1 from {s}.exited_rows where trait = %(t)s and destination = %(d)s)""",
                    key,
                ).fetchone() or (False, False)
                if has_exits:
                    conn.execute(
                        f"""insert into {s}.exited_rows (trait, destination, id, values_json, user_id, acked_run)
                        select distinct on (p.id) %(t)s, %(d)s, p.id, p.values_json, p.user_id, %(r)s from pending p where {acked} and p.exited
                        on conflict (trait, destination, id) do update
                            set values_json = excluded.values_json, user_id = excluded.user_id, acked_run = excluded.acked_run""",
                        key,
                    )
                if has_exited:
                    conn.execute(
                        f"delete from {s}.exited_rows x using pending p where {acked} and not p.exited "
                        "and x.trait = %(t)s and x.destination = %(d)s and x.id = p.id",
                        key,
                    )
                conn.execute(
                    f"delete from {s}.snapshot_rows r using pending p where {acked} and p.exited "
                    "and r.trait = %(t)s and r.destination = %(d)s and r.id = p.id",
                    key,
                )
                conn.execute(
                    f"""insert into {s}.snapshot_rows (trait, destination, id, row_hash, values_json, user_id, hash_canary, acked_run)
                    select distinct on (p.id) %(t)s, %(d)s, p.id, p.row_hash, p.values_json, p.user_id, p.hash_canary, %(r)s
                    from pending p where {acked} and not p.exited
                    on conflict (trait, destination, id) do update set row_hash = excluded.row_hash, values_json = excluded.values_json,
                        user_id = excluded.user_id, hash_canary = excluded.hash_canary, acked_run = excluded.acked_run""",
                    key,
                )
                conn.execute(
                    f"""insert into {s}.snapshots (trait, destination, version, token) values (%(t)s, %(d)s, 1, %(k)s)
                    on conflict (trait, destination) do update set version = {s}.snapshots.version + 1, token = excluded.token""",
                    {**key, "k": uuid.uuid4().hex},
                )
                conn.execute("truncate pending")
            # the rows are folded (or there was no change file): the log has done its work
            conn.execute(f"delete from {s}.acks where run_id = %(r)s and destination = %(d)s", key)

    def reset(self, trait: str, destination: str | None = None) -> list[str]:
        names = [destination] if destination else self.snapshot_destinations(trait)
        self.forget_warehouse_lineage(trait, names)
        with self._db("resetting a snapshot") as conn:
            for name in names:
                conn.execute(f"delete from {self.s}.snapshot_rows where trait = %s and destination = %s", (trait, name))
                conn.execute(f"delete from {self.s}.exited_rows where trait = %s and destination = %s", (trait, name))
                conn.execute(f"delete from {self.s}.snapshots where trait = %s and destination = %s", (trait, name))
                conn.execute(f"delete from {self.s}.pending_exits where trait = %s and destination = %s", (trait, name))
        return names

    def snapshot_destinations(self, trait: str) -> list[str]:
        with self._db("reading snapshots") as conn:
            rows = conn.execute(f"select destination from {self.s}.snapshots where trait = %s order by 1", (trait,)).fetchall()
        return [str(r[0]) for r in rows]

    # -- small values ----------------------------------------------------------------------
    def get_value(self, key: str) -> Any:
        with self._db("reading a value") as conn:
            row = conn.execute(f"select value from {self.s}.kv where key = %s", (key,)).fetchone()
        return row[0] if row else None

    def set_value(self, key: str, value: Any) -> None:
        from psycopg.types.json import Jsonb

        with self._db("writing a value") as conn:
            conn.execute(
                f"insert into {self.s}.kv (key, value) values (%s, %s) on conflict (key) do update set value = excluded.value",
                (key, Jsonb(value)),
            )
