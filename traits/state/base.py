"""The one interface of the state store, with a local-directory and a Postgres backend.

The store holds: run history, a lock per trait, and per (trait, destination) a snapshot of
what that destination acknowledged. A snapshot is a list of Parquet files read newest-last
(``snapshot_format``: a later file's row for an id replaces an earlier one's, and a row with
``exited`` set removes the id). Acknowledgements are recorded durably as they arrive (an
``AckLog``), and folded into the snapshot by ``commit``, so a killed run loses nothing.

Beside each snapshot the store keeps, per (trait, destination):
- the run's *changes* (``snapshot_format.CHANGE_COLUMNS``): every id a commit advanced, with what the snapshot
  held before and after, so ``traits revert`` can send the before values again. ``commit``
  records them with the fold; ``prune_changes`` drops those past ``settings.history_retention``;
- the *pending exits* (``pipeline.exits``): ids missing from the result but not yet exited,
  replaced at each commit.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from traits.destinations.base import Call, CallBlock
from traits.snapshot_format import Changes, Snapshot
from traits.state.records import HeldValues, RunRecord


class AckLog(ABC):
    """The durable record of what one destination acknowledged during one run."""

    @abstractmethod
    def append(self, calls: Sequence[Call]) -> None:
        """Record ``calls`` as acknowledged; durable when this returns."""

    def append_block(self, block: CallBlock) -> None:
        """Record every call of ``block`` as acknowledged; durable when this returns."""
        self.append([Call(key=key, change="added", message_id="", body=b"") for key in block.identities()])

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the log's file or connection."""


class StateStore(ABC):
    """Everything sql-traits remembers between runs."""

    #: a local directory for this process's work files (staging, diffs)
    work_dir: Path

    # -- history -------------------------------------------------------------------------
    @abstractmethod
    def save_run(self, run: RunRecord) -> None:
        """Insert or update a run record."""

    @abstractmethod
    def runs(self, trait: str | None = None, limit: int = 20, offset: int = 0) -> list[RunRecord]:
        """Past and running runs, newest first, skipping the ``offset`` newest."""

    @abstractmethod
    def run(self, run_id: str) -> RunRecord | None:
        """One run's record, or None if there is no such run."""

    @abstractmethod
    def count_runs(self, trait: str | None = None) -> int:
        """How many runs history holds (of ``trait``, or of all)."""

    @abstractmethod
    def interrupted_run(self, trait: str) -> RunRecord | None:
        """The newest run of ``trait`` still marked running (it was killed), if any."""

    # -- locks ---------------------------------------------------------------------------
    @abstractmethod
    def lock(self, trait: str, owner: str) -> AbstractContextManager[None]:
        """Hold the trait's lock; raise ``LockedError`` naming the holder if another has it."""

    @abstractmethod
    def lock_holder(self, trait: str) -> str | None:
        """Who holds the trait's lock now, or None."""

    # -- snapshots -----------------------------------------------------------------------
    @abstractmethod
    def snapshot_files(self, trait: str, destination: str) -> list[Path]:
        """The snapshot's Parquet files, oldest first; empty before the first sync."""

    def snapshot(self, trait: str, destination: str) -> Snapshot:
        """The destination's snapshot as it is now (empty before the first sync)."""
        return Snapshot(tuple(self.snapshot_files(trait, destination)))

    @abstractmethod
    def held(self, trait: str, destination: str, identity: str) -> HeldValues | None:
        """What the destination last acknowledged for one id (exits included), or None.

        Answers from an index or a filtered scan, never by loading the snapshot.
        """

    @abstractmethod
    def ack_log(self, run_id: str, trait: str, destination: str) -> AckLog:
        """Open (or reopen, on resume) the acknowledgement log of one run and destination."""

    @abstractmethod
    def has_acks(self, run_id: str, trait: str, destination: str) -> bool:
        """Whether the run recorded acknowledgements not yet committed."""

    @abstractmethod
    def commit(self, run_id: str, trait: str, destination: str, changes: Changes) -> None:
        """Fold the run's acknowledged calls into the snapshot, atomically and idempotently.

        ``changes`` are the run's changes for that destination (``pipeline.diff``); only the rows
        whose ids were acknowledged advance the snapshot.
        """

    @abstractmethod
    def reset(self, trait: str, destination: str | None = None) -> list[str]:
        """Forget snapshots so the next run sends everything; returns the destinations reset."""

    @abstractmethod
    def snapshot_destinations(self, trait: str) -> list[str]:
        """Destinations that hold a snapshot of ``trait``."""

    # -- run changes and pending exits ----------------------------------------------------
    @abstractmethod
    def run_changes(self, run_id: str, trait: str, destination: str, out: Path) -> bool:
        """Write the changes ``run_id`` committed at ``destination`` to the Parquet file ``out``
        (``CHANGE_COLUMNS``); False when none are kept (nothing committed, or pruned)."""

    @abstractmethod
    def prune_changes(self, older_than: float) -> None:
        """Forget recorded changes committed more than ``older_than`` seconds ago."""

    @abstractmethod
    def pending_exits(self, trait: str, destination: str) -> Path | None:
        """A Parquet file of the ids pending exit (``pipeline.exits.PENDING_COLUMNS``), or None."""

    @abstractmethod
    def save_pending_exits(self, trait: str, destination: str, pending: Path) -> None:
        """Replace the pending exits with the rows of the Parquet file ``pending``."""

    # -- the warehouse mode's snapshots ---------------------------------------------------
    def forget_warehouse_lineage(self, trait: str, destinations: Sequence[str]) -> None:
        """The local snapshot advanced without the warehouse's (or was reset): stop vouching
        for the warehouse's, so the next warehouse-mode run reseeds it (``traits.bookkeeping``)."""
        for destination in destinations:
            key = warehouse_lineage_key(trait, destination)
            if self.get_value(key) is not None:
                self.set_value(key, None)

    def find_run(self, run_id: str) -> RunRecord | None:
        """One run's record by its id."""
        return next((r for r in self.iter_runs() if r.run_id == run_id), None)

    # -- small values (the scheduler's next run times) ----------------------------------
    @abstractmethod
    def get_value(self, key: str) -> Any:
        """A JSON value stored under ``key``, or None."""

    @abstractmethod
    def set_value(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def run_dir(self, run_id: str) -> Path:
        """The local directory of one run's work files."""
        path = self.work_dir / "runs" / run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def iter_runs(self, trait: str | None = None) -> Iterator[RunRecord]:
        yield from self.runs(trait, limit=1_000_000)


def warehouse_lineage_key(trait: str, destination: str) -> str:
    """Where the local store keeps the lineage of the warehouse snapshot it vouches for."""
    return f"warehouse_snapshot:{trait}:{destination}"


def held_values(trait: str, destination: str, identity: str, found: tuple[str | None, str | None, bool, str | None] | None) -> HeldValues | None:
    """A ``HeldValues`` from a snapshot row's (v, u, deleted, r)."""
    if found is None:
        return None
    v, u, deleted, run_id = found
    values = json.loads(v) if v else {}
    return HeldValues(trait, destination, identity, values if isinstance(values, dict) else {}, u or None, run_id, deleted)
