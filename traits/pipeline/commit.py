"""Commit: advance each destination's snapshot by exactly what it acknowledged, then settle the run."""

from __future__ import annotations

from pathlib import Path

from traits.errors import prefixed
from traits.state.base import StateStore
from traits.state.records import RunRecord


def commit(state: StateStore, run: RunRecord, changes: dict[str, Path]) -> None:
    """Fold every destination's acknowledged calls into its snapshot (idempotent)."""
    for destination, path in changes.items():
        state.commit(run.run_id, run.trait, destination, path)


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
