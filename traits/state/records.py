"""Run history records, as stored and as shown by ``traits history``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

#: ``interrupted``: stopped past the start of delivery without committing (a state store error,
#: a lost lock); like a killed ``running`` run, the next run of the trait resumes it
RunStatus = Literal["running", "interrupted", "ok", "partial", "failed", "invalid", "guarded"]
UNFINISHED_STATUSES = ("running", "interrupted")
FINAL_STATUSES = ("ok", "partial", "failed", "invalid", "guarded")
#: how many given-up calls a history record keeps per destination, with their answers
MAX_REJECTIONS_KEPT = 20


@dataclass
class DestinationCounts:
    """One destination's counts in one run: the diff's outcomes, then what was sent."""

    added: int = 0
    changed: int = 0
    unchanged: int = 0
    exited: int = 0
    #: ids the destination's snapshot held before this run (the guard's base; 0: a first sync)
    snapshot_rows: int = 0
    #: how many of the exits send a call (``on_exit`` may keep every column of some, or all)
    exit_calls: int = 0
    #: ids missing from the result that ``exit_after`` holds back (not sent, not counted as exited)
    pending_exit: int = 0
    sent: int = 0
    failed: int = 0
    status: str = "pending"  # pending | ok | partial | failed | skipped
    error: str | None = None
    rejections: list[dict[str, str]] = field(default_factory=list)
    #: the first few pending ids: id, missing_runs, first_missing_at, exits (when)
    pending: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DestinationCounts:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class RunRecord:
    run_id: str
    trait: str
    started_at: str  # ISO-8601 UTC
    status: RunStatus = "running"
    finished_at: str | None = None
    #: where a running or interrupted run had got to: query, validate, diff, deliver, commit
    phase: str = "query"
    rows: int = 0
    #: rows (and their Arrow bytes) that left the warehouse: the whole result in local mode,
    #: the changes alone in warehouse mode
    rows_fetched: int = 0
    bytes_fetched: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    exited: int = 0
    sent: int = 0
    failed: int = 0
    error: str | None = None
    duration: float | None = None
    force: bool = False
    full_resync: bool = False
    #: the run started by resuming an interrupted one
    resumed: int = 0
    owner: str = ""
    #: a revert: the run whose changes it undid (``traits revert``)
    reverts: str | None = None
    #: a dry run kept in history (``traits run --dry-run --record``): nothing was sent or committed
    dry_run: bool = False
    #: for a kept dry run: the first calls it would send, per destination
    planned_calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: a revert that left the ids the reverted run added (``--keep-added``)
    keep_added: bool = False
    destinations: dict[str, DestinationCounts] = field(default_factory=dict)
    #: when each phase first began (ISO-8601 UTC): the run's timings per phase
    phase_started: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["destinations"] = {k: v.to_dict() for k, v in self.destinations.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["destinations"] = {k: DestinationCounts.from_dict(v) for k, v in (data.get("destinations") or {}).items()}
        return cls(**known)


def health(last: RunRecord | None, running: bool) -> str:
    """A trait's health from its last finished run: healthy, degraded, failing, running, never run."""
    if running:
        return "running"
    if last is None:
        return "never run"
    return {"ok": "healthy", "partial": "degraded", "running": "interrupted", "interrupted": "interrupted"}.get(last.status, "failing")


@dataclass(frozen=True)
class HeldValues:
    """What one destination holds for one id: the values it last acknowledged, and by which run.

    ``exited``: the last acknowledged call for the id was its exit (its traits sent as null);
    ``values`` are then the traits it had before. ``run_id`` is None for rows folded before
    snapshots recorded their run.
    """

    trait: str
    destination: str
    id: str
    values: dict[str, Any]
    user_id: str | None
    run_id: str | None
    exited: bool
