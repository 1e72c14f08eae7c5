"""Revert: undo what one run sent, as a new run through the normal delivery engine.

Every commit records, per destination, the ids it advanced with the values the snapshot held
before and after (``snapshot_format.CHANGE_COLUMNS``). A revert of run R reads R's changes and, for
each id, sends what the snapshot held before R: a changed id gets its old values again, an id
R exited is added back, an id R added is cleared (its traits sent as null; ``--keep-added``
leaves it). It is a run of its own (its own run_id and history record, ``reverts: R``): calls
are batched, retried and acknowledged like any run's, the snapshot advances by what was
acknowledged, and its own changes are recorded, so a revert can itself be reverted.

An id a later run changed again (the snapshot no longer holds what R left) is a conflict: the
revert is refused, naming those ids, unless ``--force``. An id that already holds its value
from before R (reverted already, or changed back) needs nothing.

A revert killed while delivering is resumed under its own run_id (the same messageIds): what
it had acknowledged is folded into the snapshot, and the plan is made again against the
snapshot, so only what is not reverted yet is sent. ``traits revert`` again, or the trait's
next run, resumes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traits import columnar
from traits.config.env import redact
from traits.destinations import open_destination
from traits.errors import ConfigError, GuardError, LockLostError, TraitsError, exit_code_for, exit_code_for_status
from traits.pipeline.commit import commit, settle
from traits.pipeline.deliver import DeliveryJob, Recorder, deliver_all, preview_calls
from traits.pipeline.exits import ExitPolicy, exit_calls
from traits.pipeline.payloads import CallBuilder
from traits.pipeline.run import RunResult, default_owner, interrupt, new_run_id, now_iso, status_for
from traits.snapshot_format import Changes, source
from traits.state.records import UNFINISHED_STATUSES, DestinationCounts, RunRecord

if TYPE_CHECKING:
    import duckdb

    from traits.config.models import Config
    from traits.state.base import StateStore

log = logging.getLogger("traits.run")

#: conflicting ids a refusal names
CONFLICTS_SHOWN = 10
#: what a revert sends for an id the reverted run changed, exited or added
REVERSED = "case ch.change when 'changed' then 'changed' when 'exited' then 'added' else 'exited' end"


@dataclass
class RevertOptions:
    destinations: list[str] | None = None
    dry_run: bool = False
    keep_added: bool = False
    force: bool = False
    #: calls per destination a dry run shows
    sample_calls: int = 5
    owner: str = field(default_factory=default_owner)


@dataclass
class Plan:
    path: Path
    counts: DestinationCounts
    exit_calls: int
    conflicts: list[str]
    conflict_count: int


def revert_run(config: Config, state: StateStore, run_id: str, options: RevertOptions | None = None) -> RunResult:
    """Revert ``run_id`` (see the module's docstring); returns the revert run's result."""
    options = options or RevertOptions()
    target = state.find_run(run_id)
    if target is None:
        raise ConfigError(f"no run {run_id!r} in the history", hint="`traits history` lists the runs and their ids")
    name = target.trait
    if name not in config.traits:
        raise ConfigError(f"run {run_id} is of trait {name}, which is no longer in the config")
    if target.status in UNFINISHED_STATUSES:
        raise ConfigError(f"run {run_id} has not finished", hint=f"wait for it, or finish it with `traits run {name}`")
    destinations = options.destinations or [d for d in target.destinations if d in config.traits[name].destinations]
    for destination in destinations:
        if destination not in target.destinations:
            raise ConfigError(f"run {run_id} sent nothing to {destination!r} (it sent to: {', '.join(target.destinations) or 'none'})")
        if destination not in config.destinations:
            raise ConfigError(f"destination {destination!r} of run {run_id} is no longer in the config")
    record = RunRecord(
        run_id=new_run_id(), trait=name, started_at=now_iso(), force=options.force, owner=options.owner,
        reverts=run_id, keep_added=options.keep_added,
        destinations={d: DestinationCounts() for d in destinations},
    )
    if options.dry_run:
        return _Revert(config, state, record, dry_run=True, sample_calls=options.sample_calls).execute()
    with state.lock(name, options.owner):
        interrupted = state.interrupted_run(name)
        if interrupted is not None:
            if interrupted.reverts is None:
                raise ConfigError(
                    f"trait {name} has an interrupted run {interrupted.run_id}",
                    hint=f"run `traits run {name}` to finish it, then revert",
                )
            finished = resume_revert(config, state, interrupted, options.owner)
            if interrupted.reverts == run_id and set(interrupted.destinations) == set(destinations):
                return finished  # this very revert, killed before: now finished
        return _Revert(config, state, record).execute()


def resume_revert(config: Config, state: StateStore, record: RunRecord, owner: str) -> RunResult:
    """Finish a revert that was killed (the caller holds the trait's lock)."""
    log.info("resuming interrupted revert", extra={"trait": record.trait, "run_id": record.run_id})
    run_dir = state.run_dir(record.run_id)
    for destination in record.destinations:
        changes = Changes.in_run(run_dir, destination)
        if changes.exists():  # what it had acknowledged advances the snapshot first
            state.commit(record.run_id, record.trait, destination, changes)
    record.status = "running"
    record.resumed += 1
    record.owner = owner
    return _Revert(config, state, record, resumed=True).execute()


class _Revert:
    def __init__(self, config: Config, state: StateStore, record: RunRecord, *, dry_run: bool = False, resumed: bool = False, sample_calls: int = 5) -> None:
        self.config = config
        self.state = state
        self.record = record
        self.dry_run = dry_run
        self.resumed = resumed
        self.sample_calls = sample_calls

    def execute(self) -> RunResult:
        record = self.record
        started = time.monotonic()
        run_dir = self.state.run_dir(record.run_id)
        try:
            calls = self._execute(run_dir)
        except Exception as e:
            if not self.dry_run and (isinstance(e, LockLostError) or record.phase in ("deliver", "commit")):
                return self._interrupt(started, e)
            if not isinstance(e, TraitsError):
                record.status = "failed"
                record.error = redact(f"{type(e).__name__}: {e}")
                self._finish(started, run_dir, saved=record.phase != "query")
                raise
            record.status = status_for(e)  # type: ignore[assignment]
            record.error = redact(str(e))
            self._finish(started, run_dir, saved=record.phase != "query")
            if isinstance(e, GuardError) and not self.resumed:
                raise  # a refused revert is not a run
            return RunResult(record, exit_code_for(e))
        self._finish(started, run_dir, saved=not self.dry_run)
        return RunResult(record, exit_code_for_status(record.status), calls)

    def _interrupt(self, started: float, error: Exception) -> RunResult:
        """Past the start of delivery, the revert's work stays to be resumed (as a run's does)."""
        return interrupt(self.state, self.record, started, error, resumed_by=f"`traits revert {self.record.reverts}` or the trait's next run")

    def _finish(self, started: float, run_dir: Path, *, saved: bool) -> None:
        self.record.finished_at = now_iso()
        self.record.duration = round(time.monotonic() - started, 3)
        if saved and not self.dry_run:
            self.state.save_run(self.record)
        shutil.rmtree(run_dir, ignore_errors=True)

    def _phase(self, phase: str) -> None:
        self.record.phase = phase
        if not self.dry_run:
            self.state.save_run(self.record)

    def _execute(self, run_dir: Path) -> dict[str, list[dict[str, Any]]]:
        record = self.record
        assert record.reverts is not None
        plans: dict[str, Plan] = {}
        con = columnar.connect(run_dir, self.config.settings.memory_limit)
        try:
            for destination in record.destinations:
                plan = self._plan(con, run_dir, destination)
                if plan is not None:
                    plans[destination] = plan
        finally:
            con.close()
        if not plans:
            raise ConfigError(f"run {record.reverts} changed nothing at {', '.join(record.destinations)}: there is nothing to revert")
        record.destinations = {d: record.destinations[d] for d in plans}
        conflicts = {d: p for d, p in plans.items() if p.conflict_count}
        if conflicts and not record.force:
            parts = [f"{d}: {p.conflict_count:,} id(s), " + ", ".join(repr(i) for i in p.conflicts) for d, p in conflicts.items()]
            raise GuardError(
                f"trait {record.trait}: a later run already changed ids that run {record.reverts} changed ({'; '.join(parts)}); nothing was sent",
                hint="revert the later runs first (newest first), or pass --force to send the old values anyway",
            )
        for destination, plan in plans.items():
            record.destinations[destination] = plan.counts
        record.added = sum(p.counts.added for p in plans.values())
        record.changed = sum(p.counts.changed for p in plans.values())
        record.exited = sum(p.counts.exited for p in plans.values())
        record.rows = record.added + record.changed + record.exited
        builders = {d: self._builder(d) for d in plans}
        if self.dry_run:
            record.status = "ok"
            return {d: [json.loads(c.body) for c in preview_calls(p.path, builders[d], self.sample_calls)] for d, p in plans.items()}
        self._phase("deliver")
        deadline = time.monotonic() + self.config.settings.delivery_deadline
        jobs = []
        for destination, plan in plans.items():
            dest = open_destination(destination, self.config.destinations[destination], config_dir=self.config.directory, deadline=deadline)
            ack_log = self.state.ack_log(record.run_id, record.trait, destination)
            expected = plan.counts.added + plan.counts.changed + plan.exit_calls
            jobs.append(DeliveryJob(dest, plan.path, builders[destination], Recorder(plan.counts, ack_log), expected))
        asyncio.run(deliver_all(jobs))
        self._phase("commit")
        commit(self.state, record, {d: p.path for d, p in plans.items()}, self.config.settings.history_retention)
        settle(record)
        return {}

    def _builder(self, destination: str) -> CallBuilder:
        trait = self.config.traits[self.record.trait]
        return CallBuilder(
            trait=self.record.trait, kind=trait.kind, destination=destination, run_id=self.record.run_id,
            timestamp=self.record.started_at, send="row", on_exit="clear",
        )

    def _plan(self, con: duckdb.DuckDBPyConnection, run_dir: Path, destination: str) -> Plan | None:
        """The change file that takes ``destination`` back to before the reverted run; None if it changed nothing there."""
        record = self.record
        assert record.reverts is not None
        history = run_dir / f"reverted-{destination}.parquet"
        out = Changes.in_run(run_dir, destination).path
        if not self.state.run_changes(record.reverts, record.trait, destination, history):
            target = self.state.find_run(record.reverts)
            sent = target.destinations.get(destination) if target is not None else None
            if sent is None or sent.sent == 0:
                return None  # it sent nothing there (or left only kept exits): nothing to undo
            raise ConfigError(
                f"run {record.reverts} changed nothing at {destination} that is still kept",
                hint="a run's changes are kept for settings.history_retention (default 30 days); runs that sent nothing have none",
            )
        current = self.state.snapshot(record.trait, destination).rows(con, "id, row_hash, values_json, user_id, exited")
        skip_added = "where ch.change <> 'added'" if record.keep_added else ""
        con.execute(
            f"""create or replace temp table revert_plan as
            select ch.*, cur.id is not null as present, cur.row_hash as current_row_hash, cur.values_json as current_values_json,
                   cur.user_id as current_user_id,
                   case when ch.change = 'added' then cur.id is null else cur.row_hash is not distinct from ch.before_row_hash end as reverted,
                   case when ch.change = 'exited' then cur.id is null else cur.row_hash is not distinct from ch.after_row_hash end as as_left
            from (select * from {source(con, history, "history")} qualify row_number() over (partition by id order by change) = 1) ch
            left join ({current}) cur on cur.id = ch.id
            {skip_added}"""
        )
        conflict_rows = con.execute(
            f"select id, count(*) over () from revert_plan where not reverted and not as_left order by id limit {CONFLICTS_SHOWN}"
        ).fetchall()
        send = "not reverted" + ("" if record.force else " and as_left")
        con.execute(
            f"""COPY (
                select ch.id, {REVERSED} as change, ch.before_row_hash as row_hash, ch.before_values_json as values_json,
                       case when ch.change = 'added' then coalesce(ch.current_user_id, ch.after_user_id) else ch.before_user_id end as user_id,
                       ch.current_row_hash as old_row_hash,
                       case when ch.change = 'added' then coalesce(ch.current_values_json, ch.after_values_json) else ch.current_values_json end
                           as old_values_json,
                       ch.current_user_id as old_user_id
                from revert_plan ch where {send}
            ) TO '{columnar.sql_path(out)}' (FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE 20000)"""
        )
        counts = DestinationCounts()
        for change, count in con.execute(f"select change, count(*) from read_parquet('{columnar.sql_path(out)}') group by change").fetchall():
            setattr(counts, str(change), int(count))
        con.execute("drop table revert_plan")
        return Plan(
            path=out, counts=counts, exit_calls=exit_calls(con, out, ExitPolicy.of("clear")),
            conflicts=[str(r[0]) for r in conflict_rows], conflict_count=int(conflict_rows[0][1]) if conflict_rows else 0,
        )


__all__ = ["RevertOptions", "resume_revert", "revert_run"]
