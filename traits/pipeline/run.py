"""One run of one trait: query → stage → validate → diff → deliver → commit.

``run_trait`` owns the control flow; each step lives in its own module. A run holds the
trait's lock throughout. A run found still marked ``running`` was killed: it is resumed under
the same run_id (so the same messageIds), after folding what it had acknowledged into the
snapshots, and re-diffed, so only what was not acknowledged is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from traits import columnar
from traits.config.env import redact
from traits.config.models import Config
from traits.destinations import open_destination
from traits.errors import ExitCode, GuardError, LockLostError, TraitsError, ValidationError, exit_code_for, exit_code_for_status
from traits.pipeline.commit import commit, settle
from traits.pipeline.deliver import DeliveryJob, Recorder, deliver_all, preview_calls
from traits.pipeline.diff import Differ, guard
from traits.pipeline.exits import ExitPolicy, exit_calls, hold_back
from traits.pipeline.payloads import CallBuilder
from traits.pipeline.query import fetch
from traits.pipeline.stage import Staged, stage
from traits.pipeline.steps import LocalSteps, Steps
from traits.pipeline.validate import Shape, check_shape, check_sizes, duck_types
from traits.snapshot_format import STAGED_OWN_COLUMNS, Changes, source
from traits.state.base import StateStore
from traits.state.records import DestinationCounts, RunRecord
from traits.warehouses import open_warehouse

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

log = logging.getLogger("traits.run")

#: the steps of a run, in order, as its record names them
PHASES = ("query", "validate", "diff", "deliver", "commit")
#: the largest call any destination is sent (PROTOCOL.md: 32 KB per call)
MAX_CALL_BYTES = 32_000


class Progress(Protocol):
    def phase(self, name: str, total: int | None = None) -> None: ...
    def advance(self, amount: int) -> None: ...


class _NoProgress:
    def phase(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass


@dataclass
class RunOptions:
    dry_run: bool = False
    #: keep a dry run in history, with the calls it would send (``run --dry-run --record``)
    record_dry_run: bool = False
    force: bool = False
    full_resync: bool = False
    #: how many calls per destination a dry run shows
    sample_calls: int = 10
    #: how many result rows a dry run shows (as the JSON values that would be sent)
    sample_rows: int = 0
    owner: str = field(default_factory=lambda: default_owner())


@dataclass
class RunResult:
    record: RunRecord
    exit_code: ExitCode
    #: for dry runs: sample calls per destination
    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: for dry runs: sample rows as {"id", "user_id" (accounts), "traits"}
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: an interrupted run that was resumed and finished before this one
    resumed: RunResult | None = None


def default_owner() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def status_for(error: TraitsError) -> str:
    if isinstance(error, GuardError):
        return "guarded"
    if isinstance(error, ValidationError):
        return "invalid"
    return "failed"


def run_trait(config: Config, state: StateStore, name: str, options: RunOptions | None = None, progress: Progress | None = None) -> RunResult:
    options = options or RunOptions()
    runner = _Runner(config, state, name, options, progress or _NoProgress())
    if options.dry_run:
        return runner.run(RunRecord(run_id=new_run_id(), trait=name, started_at=now_iso(), owner=options.owner))
    with state.lock(name, options.owner):
        interrupted = state.interrupted_run(name)
        finished = _finish_interrupted(runner, state, interrupted, options) if interrupted is not None else None
        record = RunRecord(
            run_id=new_run_id(), trait=name, started_at=now_iso(), force=options.force,
            full_resync=options.full_resync, owner=options.owner,
        )
        if finished is not None and finished.record.status == "interrupted":
            # the interrupted run could not be finished (the store refused again): a fresh run
            # would send its unacknowledged calls again under new messageIds; it waits instead
            return finished
        result = runner.run(record)
        if finished is not None:
            result.resumed = finished
            result.exit_code = max(result.exit_code, finished.exit_code)
        return result


def interrupt(state: StateStore, record: RunRecord, started: float, error: Exception, *, resumed_by: str) -> RunResult:
    """Leave a run to be resumed: its work files stay, its record says why it stopped.

    The next run of the trait (or ``resumed_by``) folds what it had acknowledged and finishes it
    under the same run_id, so every call it sends again keeps its messageId. A run that lost
    its lock writes nothing at all: the store may belong to another holder now.
    """
    message = str(error) if isinstance(error, TraitsError) else f"{type(error).__name__}: {error}"
    record.status = "interrupted"
    record.error = redact(f"{message}; {resumed_by} resumes it")
    record.duration = round(time.monotonic() - started, 3)
    if not isinstance(error, LockLostError):
        try:
            state.save_run(record)
        except TraitsError as e:
            log.warning("could not record the interruption: %s", e, extra={"trait": record.trait, "run_id": record.run_id})
    log.warning("run interrupted: %s", record.error, extra={"trait": record.trait, "run_id": record.run_id, "status": record.status},
                exc_info=not isinstance(error, TraitsError))
    return RunResult(record, exit_code_for(error))


def _finish_interrupted(runner: _Runner, state: StateStore, run: RunRecord, options: RunOptions) -> RunResult | None:
    """Settle a run that was killed, before a fresh run brings the destinations up to date.

    A run killed while delivering is resumed from its staged result under its own run_id, so
    every call it resends carries the messageId (and payload) it had: a collector that got it
    the first time drops the copy. A run killed before delivering sent nothing: it is closed.
    """
    if run.reverts is not None:  # a killed revert is finished by its own module
        from traits.pipeline.revert import resume_revert

        return resume_revert(runner.config, state, run, options.owner)
    run_dir = state.run_dir(run.run_id)
    # local mode resumes from its staged result; warehouse mode from its change files and its
    # result, materialised in the warehouse until the run ends
    warehouse = runner.config.diff_mode(run.trait) == "warehouse"
    staged = "changes-*.parquet" if warehouse else "result.parquet"
    if run.phase in ("deliver", "commit") and any(run_dir.glob(staged)) and (not warehouse or _result_kept(runner, run, run_dir)):
        log.info("resuming interrupted run", extra={"trait": run.trait, "run_id": run.run_id})
        run.status = "running"
        run.resumed += 1
        run.owner = options.owner
        return runner.run(run, resumed=True)
    runner.recover(run, run_dir)
    sent = run.phase in ("deliver", "commit")
    run.status = "failed"
    run.error = f"interrupted during {run.phase}; " + (
        "its work files are gone: what it did not get acknowledged is sent by the next run" if sent else "nothing was sent"
    )
    run.finished_at = now_iso()
    state.save_run(run)
    shutil.rmtree(run_dir, ignore_errors=True)
    return None


def _result_kept(runner: _Runner, run: RunRecord, run_dir: Path) -> bool:
    """Whether a warehouse-mode run's result is still in the warehouse, to be resumed from.

    A run killed after its tables were dropped (its commit done, its record not yet closed) has
    none. Resuming it would materialise today's result under the old run_id: new values under
    messageIds a collector already has. It is closed instead, and the next run sends the rest.
    """
    from traits.pipeline.warehouse_steps import WarehouseSteps

    try:
        with WarehouseSteps(runner, run, run_dir) as steps:
            return steps.result_kept()
    except TraitsError:
        return True  # the resume meets the same error and reports it


class _Runner:
    def __init__(self, config: Config, state: StateStore, name: str, options: RunOptions, progress: Progress) -> None:
        self.config = config
        self.state = state
        self.name = name
        self.trait = config.traits[name]
        self.options = options
        self.progress = progress

    def run(self, record: RunRecord, resumed: bool = False) -> RunResult:
        started = time.monotonic()
        persist = not self.options.dry_run
        run_dir = self.state.run_dir(record.run_id)
        if persist:
            self.state.save_run(record)
        self.sample_rows: list[dict[str, Any]] = []
        try:
            result = self._execute(record, run_dir, resumed=resumed)
        except Exception as e:
            if persist and self.resumable(record, e):
                return self._interrupt(record, started, e)
            if not isinstance(e, TraitsError):
                record.status = "failed"
                record.error = redact(f"{type(e).__name__}: {e}")
                self._finish(record, started, persist, run_dir)
                raise
            record.status = status_for(e)  # type: ignore[assignment]
            record.error = redact(str(e))
            self._finish(record, started, persist, run_dir)
            log.warning("run ended: %s", record.error, extra={"trait": self.name, "run_id": record.run_id, "status": record.status})
            return RunResult(record, exit_code_for(e))
        if self.options.dry_run and self.options.record_dry_run:
            # kept once it is over, never while it runs: a dry run has nothing to resume
            record.dry_run = True
            record.planned_calls = result
        self._finish(record, started, persist or (self.options.dry_run and self.options.record_dry_run), run_dir)
        code = exit_code_for_status(record.status)
        log.info("run ended", extra={"trait": self.name, "run_id": record.run_id, "status": record.status, "sent": record.sent, "failed": record.failed})
        return RunResult(record, code, result, self.sample_rows)

    @staticmethod
    def resumable(record: RunRecord, error: BaseException) -> bool:
        """Past the start of delivery, or with its lock lost, a run's work must survive its error."""
        return isinstance(error, LockLostError) or PHASES.index(record.phase) >= PHASES.index("deliver")

    def _interrupt(self, record: RunRecord, started: float, error: Exception) -> RunResult:
        return interrupt(self.state, record, started, error, resumed_by="the next run")

    def _finish(self, record: RunRecord, started: float, persist: bool, run_dir: Path) -> None:
        record.finished_at = now_iso()
        record.duration = round(time.monotonic() - started, 3)
        if persist:
            self.state.save_run(record)
        shutil.rmtree(run_dir, ignore_errors=True)

    # -- the steps ---------------------------------------------------------------------------
    def _execute(self, record: RunRecord, run_dir: Path, *, resumed: bool) -> dict[str, list[dict[str, Any]]]:
        if self.config.diff_mode(self.name) == "warehouse":
            from traits.pipeline.warehouse_steps import WarehouseSteps

            steps: Steps = WarehouseSteps(self, record, run_dir)
        else:
            steps = LocalSteps(self, record, run_dir)
        with steps:
            changes = steps.diff(resumed=resumed)
            builders = {d: self._builder(d, record) for d in self.trait.destinations}
            if self.options.dry_run:
                record.status = "ok"
                return {d: [_as_json(c.body) for c in preview_calls(changes[d], builders[d], self.options.sample_calls)] for d in changes}
            self.phase(record, "deliver")
            self._deliver(record, changes, builders)
            self.phase(record, "commit")
            commit(self.state, record, changes, self.config.settings.history_retention, commit_one=steps.commit)
            steps.committed()
            settle(record)
            return {}

    def phase(self, record: RunRecord, phase: str) -> None:
        # a resumed run goes through the early steps again, but the phase it records never goes
        # back: one that has delivered stays one to resume, or what it sent unacknowledged
        # before it was killed would not be sent again
        columnar.release_memory()  # what the last phase freed, before the next one allocates
        if PHASES.index(phase) > PHASES.index(record.phase):
            record.phase = phase
        record.phase_started.setdefault(phase, now_iso())  # the console's timings per phase
        if not self.options.dry_run:
            self.state.save_run(record)
        log.info("%s", phase, extra={"trait": self.name, "run_id": record.run_id, "phase": phase})

    def recover(self, record: RunRecord, run_dir: Path) -> None:
        """Fold what the interrupted run had acknowledged into the snapshots."""
        changes = {d: Changes.in_run(run_dir, d) for d in self.trait.destinations}
        changes = {d: c for d, c in changes.items() if c.exists()}
        if not changes:
            return
        if self.config.diff_mode(self.name) == "warehouse":
            from traits.pipeline.warehouse_steps import WarehouseSteps

            with WarehouseSteps(self, record, run_dir) as steps:
                for destination, change_set in changes.items():
                    steps.commit(destination, change_set)
                steps.committed()
            return
        for destination, change_set in changes.items():
            self.state.commit(record.run_id, self.name, destination, change_set)

    def query(self, staged_path: Path, augment: Callable[[pa.RecordBatch], pa.RecordBatch]) -> Staged:
        source = self.config.sources[self.trait.source]
        sql = self.config.trait_sql(self.name)
        self.progress.phase("query")
        max_rows = self.config.max_rows_for(self.name)
        with open_warehouse(self.trait.source, source, self.config.directory) as warehouse:
            rows = fetch(warehouse, sql, max_rows=max_rows, trait=self.name, progress=self.progress.advance)
            return stage(rows, staged_path, trait=self.name, augment=augment)

    def shape_of(self, con: Any, staged: Path) -> Shape:
        import pyarrow.parquet as pq

        schema = pq.read_schema(staged)
        schema = pa_schema_without(schema, STAGED_OWN_COLUMNS)
        return check_shape(self.name, self.trait, self.config.settings, schema, duck_types(con, staged))

    def _max_call_bytes(self, destination: str) -> int:
        return min(MAX_CALL_BYTES, self.config.destinations[destination].max_call_bytes)

    def diff_all(self, differ: Differ, con: duckdb.DuckDBPyConnection, record: RunRecord, run_dir: Path, *,
                 skip_guard: bool, resumed: bool = False) -> dict[str, Path]:
        """Diff every destination, hold back pending exits, check sizes and the guard."""
        changes: dict[str, Path] = {}
        for destination in self.trait.destinations:
            path = Changes.in_run(run_dir, destination).path
            now = differ.diff(destination, path, full_resync=record.full_resync or self.options.full_resync)
            held = hold_back(
                con, self.state, self.name, destination, path,
                exit_after=self.trait.exit_after, run_id=record.run_id, started_at=record.started_at, exited=now.exited,
            )
            now.exited, now.pending_exit, now.pending = held.exited, held.pending, held.shown
            now.exit_calls = exit_calls(con, path, ExitPolicy.of(self.trait.on_exit)) if now.exited else 0
            check_sizes(con, self.name, path, max_call_bytes=self._max_call_bytes(destination), largest=differ.largest_call(destination))
            if not skip_guard:  # exits count as they would be sent: pending and kept ones send nothing
                guard(self.name, destination, changed=now.changed, exits=now.exit_calls, snapshot_rows=now.snapshot_rows,
                      max_exit_ratio=self.trait.max_exit_ratio, max_change_ratio=self.trait.max_change_ratio)
            first = record.destinations.get(destination) if resumed else None
            if first is not None:
                # a resumed run keeps the counts of its first diff: the rows its earlier attempts
                # got acknowledged are folded into the snapshot now, so this diff no longer sees
                # them; they count as sent, and this attempt's sends add to them
                first.sent = max(self._calls_for(first) - self._calls_for(now), 0)
                first.failed, first.status, first.error, first.rejections = 0, "pending", None, []
                now = first
            record.destinations[destination] = now
            changes[destination] = path
        counts = record.destinations.values()
        record.added, record.changed = sum(c.added for c in counts), sum(c.changed for c in counts)
        record.unchanged, record.exited = sum(c.unchanged for c in counts), sum(c.exited for c in counts)
        if not self.trait.destinations:
            record.unchanged = record.rows
        return changes

    def sample(self, con: Any, shape: Shape, staged: Path) -> list[dict[str, Any]]:
        """The first rows of ``staged`` as the JSON values that would be sent (``preview``)."""
        return sample_rows(con, shape, staged, self.options.sample_rows)

    def _calls_for(self, counts: DestinationCounts) -> int:
        """How many calls these diff counts make (exits that keep every column make none)."""
        return counts.added + counts.changed + counts.exit_calls

    def _builder(self, destination: str, record: RunRecord) -> CallBuilder:
        return CallBuilder(
            trait=self.name, kind=self.trait.kind, destination=destination, run_id=record.run_id,
            timestamp=record.started_at, send=self.trait.send, on_exit=self.trait.on_exit,
            full_resync=record.full_resync or self.options.full_resync,
        )

    def _deliver(self, record: RunRecord, changes: dict[str, Path], builders: dict[str, CallBuilder]) -> None:
        deadline = time.monotonic() + self.config.settings.delivery_deadline
        jobs = []
        total = 0
        with contextlib.ExitStack() as opened:
            # a setup that fails half-way (a bad secret on the second destination) closes
            # what it had opened; once delivering, each job closes its own
            for destination, path in changes.items():
                counts = record.destinations[destination]
                expected = self._calls_for(counts)
                total += expected - counts.sent
                dest = open_destination(destination, self.config.destinations[destination], config_dir=self.config.directory, deadline=deadline)
                log_ = self.state.ack_log(record.run_id, self.name, destination)
                opened.callback(log_.close)
                jobs.append(DeliveryJob(dest, path, builders[destination], Recorder(counts, log_, self.progress.advance), expected))
            opened.pop_all()
        self.progress.phase("deliver", total)
        asyncio.run(deliver_all(jobs))


def pa_schema_without(schema: pa.Schema, names: tuple[str, ...]) -> pa.Schema:
    for name in names:
        if name in schema.names:
            schema = schema.remove(schema.get_field_index(name))
    return schema


def sample_rows(con: Any, shape: Shape, staged: Path, limit: int) -> list[dict[str, Any]]:
    uid = shape.uid_sql or "cast(null as varchar)"
    rows = con.execute(
        f"select {shape.id_sql}, {uid}, {shape.v_sql} from {source(con, staged, 'staged')} limit {int(limit)}"
    ).fetchall()
    return [{"id": r[0], "user_id": r[1], "traits": json.loads(r[2])} for r in rows]


def _as_json(body: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body)
    return data


__all__ = ["RunOptions", "RunResult", "default_owner", "run_trait"]
