"""The steps before delivery in warehouse mode (``diff: warehouse``), and its fold at commit.

The warehouse materialises, validates and diffs (``bookkeeping.differ``); only the changes
are fetched. A destination whose warehouse snapshot is not current is reseeded: the whole
result is fetched and staged as in local mode, and diffed locally against what the local
store says the destination holds. The per-run tables stay while the run may be resumed and
go when it ends.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from traits import columnar
from traits.bookkeeping.differ import Fetched, WarehouseDiffer
from traits.bookkeeping.sessions import Session, open_session
from traits.bookkeeping.tables import result_table
from traits.pipeline.diff import LocalDiffer
from traits.pipeline.known import SAMPLE_IDS, check_known_ratio, identity_for
from traits.pipeline.stage import stage
from traits.pipeline.steps import Steps
from traits.pipeline.trait_keys import check_keys_at_run
from traits.pipeline.validate import Fingerprinter, Shape
from traits.snapshot_format import Changes
from traits.state.records import DestinationCounts, RunRecord
from traits.warehouses import open_warehouse

if TYPE_CHECKING:
    from traits.pipeline.run import _Runner


class WarehouseSteps(Steps):
    """Query, validate and diff in the warehouse; fold the acknowledged ids back at commit."""

    def __init__(self, runner: _Runner, record: RunRecord, run_dir: Path) -> None:
        super().__init__(runner, record, run_dir)
        self.fetched = Fetched()
        self._stack = contextlib.ExitStack()
        self._differ: WarehouseDiffer | None = None
        self._keep_tables = False
        self._finished = False

    # -- sessions ------------------------------------------------------------------------------
    def _open(self) -> WarehouseDiffer:
        if self._differ is None:
            runner = self.runner
            source = runner.config.sources[runner.trait.source]
            warehouse = self._stack.enter_context(open_warehouse(runner.trait.source, source, runner.config.directory))
            session: Session = self._stack.enter_context(
                open_session(runner.trait.source, source, warehouse, trait=runner.name, config_dir=runner.config.directory)
            )
            con = columnar.connect(self.run_dir, runner.config.settings.memory_limit)
            self._stack.callback(con.close)
            self._differ = WarehouseDiffer(runner.config, runner.state, runner.name, self.record.run_id, self.run_dir, session, con, self.fetched)
            self._differ.ensure_schema()
        return self._differ

    def _close(self) -> None:
        self._differ = None
        self._stack.close()
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> WarehouseSteps:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            done = self._finished or self._keep_tables
            if self._differ is not None and not done and (exc is None or not self.runner.resumable(self.record, exc)):
                with contextlib.suppress(Exception):  # best effort: the next run drops leftovers too
                    self._differ.finish()
        finally:
            self._close()

    # -- query, validate, diff -----------------------------------------------------------------
    def diff(self, *, resumed: bool) -> dict[str, Path]:
        runner, record = self.runner, self.record
        options = runner.options
        differ = self._open()
        if resumed:
            self._recover()
        prepared = differ.resume() if resumed else None
        full_resync = record.full_resync or options.full_resync
        if prepared is None:
            runner.phase(record, "query")
            differ.register_run()
            runner.phase(record, "validate")
            prepared = differ.prepare(runner.config.trait_sql(runner.name), full_resync=full_resync)
        else:
            runner.phase(record, "validate")
        shape = prepared.shape
        record.rows = prepared.rows
        check_keys_at_run(runner.config, runner.state, runner.name, [c.name for c in shape.traits], persist=not options.dry_run)
        con = differ.con
        if options.sample_rows:
            runner.sample_rows = runner.sample(con, shape, self._sample(differ, shape))
        runner.phase(record, "diff")
        staged = self.run_dir / "result.parquet"
        local: LocalDiffer | None = None
        reseed = [d for d in runner.trait.destinations if d not in prepared.current]
        if reseed:
            # a destination whose warehouse snapshot is not current is diffed here, once (the
            # warehouse checked the ids are unique)
            fingerprinter = Fingerprinter(con, runner.name, runner.trait, runner.config.settings)
            differ.fetch_all(staged, fingerprinter.add)
            shape_here, summary = fingerprinter.finish(con, staged)
            local = LocalDiffer(con, staged, shape_here, summary, lambda: None,
                                lambda destination: runner.state.snapshot(runner.name, destination), run_id=record.run_id)
        both = _BothModes(differ, local, reseed)
        changes = runner.diff_all(both, con, record, self.run_dir, skip_guard=options.force or resumed, resumed=resumed)
        identity = identity_for(runner.config, runner.name)
        if not (options.force or resumed) and (identity is None or prepared.materialised):
            # (a result equal to every snapshot has only known ids)
            check_known_ratio(runner.config, runner.name, con, shape, self._known_sample(differ, shape), record)
        record.rows_fetched += self.fetched.rows
        record.bytes_fetched += self.fetched.bytes
        if not options.dry_run:
            self._keep_tables = True  # delivery may be cut off: the run resumes from them
            self._close()
        return changes

    def result_kept(self) -> bool:
        """Whether this run's result is still materialised in the warehouse."""
        differ = self._open()
        self._keep_tables = True  # a question: nothing of the run's is dropped for it
        return bool(differ.session.tables(result_table(self.record.run_id)))

    def _recover(self) -> None:
        """Fold what the interrupted attempt had acknowledged, here and in the warehouse."""
        for destination in self.runner.trait.destinations:
            changes = Changes.in_run(self.run_dir, destination)
            if changes.exists():
                self.commit(destination, changes)

    def _sample(self, differ: WarehouseDiffer, shape: Shape) -> Path:
        """The result's first rows, fetched (``preview``)."""
        path = self.run_dir / "sample.parquet"
        sql = self.runner.config.trait_sql(self.runner.name)
        batches = differ.session.warehouse.stream(sql, max_rows=max(self.runner.options.sample_rows - 1, 0))
        stage((differ.fetched.count(b) for b in batches), path, trait=self.runner.name)
        return path

    def _known_sample(self, differ: WarehouseDiffer, shape: Shape) -> Path:
        path = self.run_dir / "known-ids.parquet"
        if identity_for(self.runner.config, self.runner.name) is not None and self.runner.trait.min_known_ratio is not None:
            differ.sample_ids(path, shape.id_column.name, SAMPLE_IDS)
        return path

    # -- commit ---------------------------------------------------------------------------------
    def commit(self, destination: str, changes: Changes) -> None:
        """The local commit, then the warehouse fold: an advance of the warehouse snapshot when
        the local store vouched for it *before* this commit (which forgets its lineage, so a
        kill between the two leaves it unvouched), else a reseed."""
        differ = self._open()
        reseed = differ.current_snapshot(destination) is None
        super().commit(destination, changes)
        runner = self.runner
        acked = self.run_dir / f"acked-{destination}.parquet"
        has = runner.state.run_changes(self.record.run_id, runner.name, destination, acked)
        differ.fold(destination, acked if has else None, changes.path, reseed=reseed)
        acked.unlink(missing_ok=True)

    def committed(self) -> None:
        self._open().finish()
        self._finished = True


class _BothModes:
    """One differ for the run: the warehouse's where its snapshot is current, else the local one."""

    def __init__(self, warehouse: WarehouseDiffer, local: LocalDiffer | None, reseed: list[str]) -> None:
        self.warehouse = warehouse
        self.local = local
        self.reseed = reseed

    def diff(self, destination: str, out: Path, *, full_resync: bool) -> DestinationCounts:
        if destination in self.reseed:
            assert self.local is not None
            return self.local.diff(destination, out, full_resync=full_resync)
        return self.warehouse.diff(destination, out, full_resync=full_resync)

    def largest_call(self, destination: str) -> int | None:
        if destination in self.reseed:
            assert self.local is not None
            return self.local.largest_call(destination)
        return self.warehouse.largest_call(destination)
