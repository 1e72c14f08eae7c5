"""The Postgres store's locks: an advisory lock per trait, held on a session of its own, and fenced.

Each holder gets a new ``epoch`` in ``locks`` and keeps a second session (the *keeper*) open
while it runs. Every write of a run (its record, each ack batch, the commit) calls
``_check_fence`` in its own transaction: the epoch must still be its own and its lock session
must still hold the advisory lock. A run that lost its lock stops there and commits nothing.
A runner that finds the lock free while the previous holder's keeper is still connected
refuses to take over: that holder is alive, and stops at its next write. The keeper pings
both sessions, so idle-session timeouts do not end them and a lost lock is noticed between
writes too.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from traits.errors import LockedError, LockLostError

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("traits.state")


def lock_key(schema: str, trait: str) -> int:
    """A signed 64-bit advisory lock key for one trait in one schema (advisory locks are per database)."""
    digest = hashlib.blake2b(f"sql-traits\0{schema}\0{trait}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_ping_seconds() -> float:
    """How often a holder pings its lock sessions (``TRAITS_LOCK_PING``, default 10 s)."""
    return float(os.environ.get("TRAITS_LOCK_PING", "10"))


@dataclass
class Fence:
    """What a lock holder checks before each write: its epoch, its lock session, the lock key."""

    trait: str
    epoch: int
    lock_pid: int
    key: int
    #: why the lock was found lost, once it was
    lost: str | None = None


def _unlock(conn: psycopg.Connection[Any], key: int) -> None:
    # released now, not whenever the server gets round to ending the session (closing it, next,
    # releases the lock in any case)
    if not conn.closed and not conn.broken:
        with contextlib.suppress(Exception):
            conn.execute("select pg_advisory_unlock(%s)", (key,))


class FencedLocks:
    """The part of ``PostgresStateStore`` that takes, keeps, checks and releases trait locks."""

    if TYPE_CHECKING:
        s: str
        schema: str
        where: str
        _fences: dict[str, Fence]

        def _connect(self, autocommit: bool = True) -> psycopg.Connection[Any]: ...
        def _db(self, what: str) -> AbstractContextManager[psycopg.Connection[Any]]: ...
        def _errors(self, what: str) -> AbstractContextManager[None]: ...

    # -- locks -----------------------------------------------------------------------------
    @contextmanager
    def lock(self, trait: str, owner: str) -> Iterator[None]:
        key = lock_key(self.schema, trait)
        with contextlib.ExitStack() as stack:
            conn = stack.enter_context(self._connect())
            with self._errors(f"locking trait {trait}"):
                # a holder whose host vanished is dropped after about 60 + 3 * 10 seconds
                conn.execute("set tcp_keepalives_idle = 60; set tcp_keepalives_interval = 10; set tcp_keepalives_count = 3")
                row = conn.execute("select pg_try_advisory_lock(%s)", (key,)).fetchone()
            if not (row and row[0]):
                holder = self.lock_holder(trait) or "another process"
                raise LockedError(f"trait {trait} is already running ({holder})", hint="wait for that run to finish")
            stack.callback(_unlock, conn, key)
            keeper = stack.enter_context(self._connect())
            fence = self._take(trait, owner, conn, keeper)
            stack.callback(self._release, fence, keeper)
            stop = threading.Event()
            thread = threading.Thread(target=self._keep, args=(fence, conn, keeper, stop), name=f"traits-lock-{trait}", daemon=True)
            thread.start()
            stack.callback(thread.join)
            stack.callback(stop.set)
            self._fences[trait] = fence
            stack.callback(self._fences.pop, trait, None)
            yield

    def _take(self, trait: str, owner: str, conn: psycopg.Connection[Any], keeper: psycopg.Connection[Any]) -> Fence:
        """Record this holder under a new epoch; refuse when the previous holder is still alive."""
        with self._errors(f"locking trait {trait}"), keeper.transaction():
            previous = keeper.execute(
                f"""select l.holder from {self.s}.locks l where l.trait = %s and l.keeper_pid is not null and exists (
                        select 1 from pg_stat_activity a where a.pid = l.keeper_pid and a.backend_start = l.keeper_start)
                    for update""",
                (trait,),
            ).fetchone()
            if previous is not None:
                raise LockedError(
                    f"trait {trait}: its previous holder ({previous[0]}) lost its lock in the state store but is still running",
                    hint="it stops at its next write without committing; run again once it has",
                )
            lock_pid = conn.info.backend_pid
            row = keeper.execute(
                f"""insert into {self.s}.locks (trait, holder, epoch, lock_pid, keeper_pid, keeper_start)
                    values (%(t)s, %(o)s, 1, %(l)s, pg_backend_pid(), (select backend_start from pg_stat_activity where pid = pg_backend_pid()))
                    on conflict (trait) do update set holder = excluded.holder, acquired_at = now(), epoch = {self.s}.locks.epoch + 1,
                        lock_pid = excluded.lock_pid, keeper_pid = excluded.keeper_pid, keeper_start = excluded.keeper_start
                    returning epoch""",
                {"t": trait, "o": owner, "l": lock_pid},
            ).fetchone()
        assert row is not None
        return Fence(trait, int(row[0]), lock_pid, lock_key(self.schema, trait))

    def _release(self, fence: Fence, keeper: psycopg.Connection[Any]) -> None:
        if keeper.closed or keeper.broken:
            return
        with contextlib.suppress(Exception):
            keeper.execute(
                f"update {self.s}.locks set keeper_pid = null, keeper_start = null where trait = %s and epoch = %s",
                (fence.trait, fence.epoch),
            )

    def _keep(self, fence: Fence, conn: psycopg.Connection[Any], keeper: psycopg.Connection[Any], stop: threading.Event) -> None:
        """Keep both sessions busy enough for idle timeouts, and notice a lost lock between writes."""
        while not stop.wait(lock_ping_seconds()):
            try:
                conn.execute("select 1")
                with keeper.transaction():
                    self._check_fence(keeper, fence)
            except LockLostError as e:
                fence.lost = e.message
            except Exception as e:  # noqa: BLE001 - a dead session is the lost lock itself
                fence.lost = f"trait {fence.trait}: the state store session holding its lock ended ({type(e).__name__})"
            if fence.lost:
                log.warning("lock lost", extra={"trait": fence.trait, "reason": fence.lost})
                return

    def _check_fence(self, conn: psycopg.Connection[Any], fence: Fence | None) -> None:
        """Inside the caller's transaction: raise ``LockLostError`` unless ``fence`` still holds the lock."""
        if fence is None:
            return
        if fence.lost is None:
            row = conn.execute(
                f"""select 1 from {self.s}.locks l where l.trait = %(t)s and l.epoch = %(e)s and exists (
                        select 1 from pg_locks where locktype = 'advisory' and granted and pid = %(p)s
                        and classid = ((%(k)s >> 32) & 4294967295)::bigint::oid and objid = (%(k)s & 4294967295)::bigint::oid
                        and objsubid = 1)
                    for share""",
                {"t": fence.trait, "e": fence.epoch, "p": fence.lock_pid, "k": fence.key},
            ).fetchone()
            if row is None:
                fence.lost = f"trait {fence.trait}: its lock in the state store {self.where} was lost while it ran"
        if fence.lost is not None:
            raise LockLostError(fence.lost, hint="this run stopped and committed nothing; the next run resumes it")

    def fence(self, trait: str) -> Fence | None:
        return self._fences.get(trait)

    def lock_holder(self, trait: str) -> str | None:
        key = lock_key(self.schema, trait)
        with self._db("reading locks") as conn:
            # the advisory lock decides; the row only names the holder (a dead one leaves a stale row)
            row = conn.execute(
                f"""select exists (select 1 from pg_locks where locktype = 'advisory' and granted and database =
                        (select oid from pg_database where datname = current_database())
                        and classid = ((%(k)s >> 32) & 4294967295)::bigint::oid and objid = (%(k)s & 4294967295)::bigint::oid
                        and objsubid = 1),
                    (select holder from {self.s}.locks where trait = %(t)s)""",
                {"k": key, "t": trait},
            ).fetchone()
        if not row or not row[0]:
            return None
        return str(row[1] or "another process")

