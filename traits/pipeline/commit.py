"""Commit: advance each destination's snapshot by exactly what it acknowledged, then settle the run.

With the snapshot advance the pending exits (``pipeline.exits``) the run counted, and changes
recorded longer ago than ``settings.history_retention`` are pruned.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from traits.errors import prefixed
from traits.pipeline.exits import pending_path
from traits.snapshot_format import Changes
from traits.state.base import StateStore
from traits.state.records import RunRecord

#: ``settings.history_retention``'s default: 30 days
DEFAULT_RETENTION = 30 * 86400.0


def commit(state: StateStore, run: RunRecord, changes: dict[str, Path], retention: float = DEFAULT_RETENTION,
           commit_one: Callable[[str, Changes], None] | None = None) -> None:
    """Fold every destination's acknowledged calls into its snapshot (idempotent), then its pending exits.

    ``commit_one`` commits one destination in place of ``state.commit``, when a snapshot kept
    elsewhere (the warehouse's) advances too (``Steps.commit``); it runs before the run's
    recorded changes may be pruned: it reads them.
    """
    for destination, path in changes.items():
        if commit_one is None:
            state.commit(run.run_id, run.trait, destination, Changes(path))
        else:
            commit_one(destination, Changes(path))
        pending = pending_path(path, destination)
        if pending.exists():
            state.save_pending_exits(run.trait, destination, pending)
    state.prune_changes(retention)


def settle(run: RunRecord) -> None:
    """Sum the per-destination counts into the run and choose its status."""
    counts = list(run.destinations.values())
    run.sent = sum(c.sent for c in counts)
    run.failed = sum(c.failed for c in counts)
    errors = [prefixed(f"destination {name}", c.error) for name, c in run.destinations.items() if c.error]
    if run.failed == 0:
        run.status = "ok"
        run.error = None
    else:
        run.status = "partial" if run.sent else "failed"
        run.error = "; ".join(errors) or f"{run.failed:,} call(s) not acknowledged"
