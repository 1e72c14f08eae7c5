"""The steps before delivery (query, validate, diff), one class per diff mode.

``Steps.diff`` leaves one change file per destination (``pipeline.diff``'s layout) and fills
the run record's counts; delivery and commit read only those, so they are one code path for
both modes. ``commit`` commits each destination's acknowledgements to the local store (the
warehouse mode advances its own snapshot there too); ``committed`` runs after all of them.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from traits import columnar
from traits.pipeline.diff import LocalDiffer
from traits.pipeline.first_sync import FirstSyncFile
from traits.pipeline.known import check_known_ratio
from traits.pipeline.trait_keys import check_keys_at_run
from traits.pipeline.validate import Fingerprinter, check_rows, check_unique
from traits.snapshot_format import Changes
from traits.state.records import RunRecord

if TYPE_CHECKING:
    import pyarrow as pa

    from traits.pipeline.run import _Runner


class Steps(ABC):
    def __init__(self, runner: _Runner, record: RunRecord, run_dir: Path) -> None:
        self.runner = runner
        self.record = record
        self.run_dir = run_dir

    @abstractmethod
    def diff(self, *, resumed: bool) -> dict[str, Path]:
        """Query, validate and diff; the change file of each destination."""

    def commit(self, destination: str, changes: Changes) -> None:
        """Commit ``destination``'s acknowledgements to the local store."""
        self.runner.state.commit(self.record.run_id, self.runner.name, destination, changes)

    def committed(self) -> None:  # noqa: B027 - optional hook
        """After every destination committed."""

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


class LocalSteps(Steps):
    """The whole result is fetched and staged here, and diffed by DuckDB over local files."""

    def diff(self, *, resumed: bool) -> dict[str, Path]:
        runner, record, run_dir = self.runner, self.record, self.run_dir
        options = runner.options
        staged_path = run_dir / "result.parquet"
        if resumed:
            runner.recover(record, run_dir)
        con = columnar.connect(run_dir, runner.config.settings.memory_limit)
        try:
            if staged_path.exists():  # a resumed run: its result is staged already
                runner.phase(record, "validate")
                shape = runner.shape_of(con, staged_path)
                summary = check_rows(con, runner.name, shape, runner.config.settings, staged_path)
                first_sync_file = None
            else:
                runner.phase(record, "query")
                fingerprinter = Fingerprinter(con, runner.name, runner.trait, runner.config.settings)
                first_sync = self._first_sync_file()
                with first_sync or contextlib.nullcontext():
                    staged = runner.query(staged_path, lambda batch: self._stage(fingerprinter, first_sync, batch))
                    first_sync_file = first_sync.close() if first_sync is not None else None
                record.rows_fetched, record.bytes_fetched = staged.rows, staged.bytes
                runner.phase(record, "validate")
                shape, summary = fingerprinter.finish(con, staged_path)
            record.rows = summary.rows
            check_keys_at_run(runner.config, runner.state, runner.name, [c.name for c in shape.traits], persist=not options.dry_run)
            ensure_unique = _once(lambda: check_unique(con, runner.name, shape, staged_path))
            if not runner.trait.destinations:
                ensure_unique()
            if options.sample_rows:
                runner.sample_rows = runner.sample(con, shape, staged_path)
            runner.phase(record, "diff")
            differ = LocalDiffer(con, staged_path, shape, summary, ensure_unique,
                                 lambda destination: runner.state.snapshot(runner.name, destination), run_id=record.run_id,
                                 first_sync_file=first_sync_file)
            # a resumed run passed the guard before it first delivered
            changes = runner.diff_all(differ, con, record, run_dir, skip_guard=options.force or resumed, resumed=resumed)
            if not (options.force or resumed):
                check_known_ratio(runner.config, runner.name, con, shape, staged_path, record)
            return changes
        finally:
            con.close()

    def _first_sync_file(self) -> FirstSyncFile | None:
        """Where staging writes the first sync's change file, when a destination has no snapshot yet."""
        runner = self.runner
        if all(runner.state.snapshot(runner.name, d) for d in runner.trait.destinations):
            return None
        return FirstSyncFile(self.run_dir / "first-sync.parquet", self.record.run_id, runner.config.settings.memory_limit)

    @staticmethod
    def _stage(fingerprinter: Fingerprinter, first_sync: FirstSyncFile | None, batch: pa.RecordBatch) -> pa.RecordBatch:
        staged = fingerprinter.add(batch)
        if first_sync is not None:
            assert fingerprinter.shape is not None  # checked on the first batch
            first_sync.add(fingerprinter.shape, staged)
        return staged


def _once(action: Callable[[], None]) -> Callable[[], None]:
    done = False

    def run_once() -> None:
        nonlocal done
        if not done:
            action()
            done = True

    return run_once

