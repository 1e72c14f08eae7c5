"""Each staged row carries its own row hash, however the engine schedules the hashing."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from tests.conftest import Project
from traits import columnar
from traits.config.models import Settings, Trait
from traits.pipeline.validate import Fingerprinter
from traits.snapshot_format import STAGED_ROW_HASH


@pytest.fixture
def four_threads() -> Iterator[None]:
    """The process's engine with several threads even on a one-core machine (as a server has)."""
    con = columnar.connect()
    con.execute("SET GLOBAL threads = 4")
    try:
        yield
    finally:
        con.execute("RESET GLOBAL threads")
        con.close()


@pytest.mark.usefixtures("four_threads")
def test_a_batch_scanned_by_several_threads_keeps_each_hash_beside_its_row() -> None:
    """The hashes are put beside the batch's columns by position. A batch of the default
    ``batch_rows`` (250,000) is scanned by several of the engine's threads, which may hand the
    rows back in another order: half the rows of a 10M-row result were once staged with another
    row's hash (each run a different half), so unchanged rows were sent again."""
    rows = 250_000
    con = columnar.connect()
    try:
        trait = Trait.model_validate({"kind": "user", "source": "wh", "sql": "select 1", "destinations": []})
        fingerprinter = Fingerprinter(con, "t", trait, Settings())
        batch = pa.RecordBatch.from_pydict({
            "user_id": [f"user_{i}" for i in range(rows)],
            "plan": [("free", "pro", "team")[i % 3] for i in range(rows)],
            "visits": list(range(rows)),
        })
        staged = pa.Table.from_batches([fingerprinter.add(batch) for _ in range(3)])
        assert fingerprinter.shape is not None
        con.register("staged", staged)
        misplaced = con.execute(f"select count(*) from staged where {STAGED_ROW_HASH} <> {fingerprinter.shape.h_sql}").fetchall()[0][0]
        con.unregister("staged")
    finally:
        con.close()
    assert (misplaced, staged.num_rows) == (0, 3 * rows)


@pytest.mark.usefixtures("four_threads")
@pytest.mark.parametrize("project", ["duckdb", "postgres-adbc"], indirect=True)
def test_a_result_of_several_full_batches_is_unchanged_on_the_next_run(project: Project) -> None:
    """End to end: 600,000 rows (more than two batches of the default 250,000), a first sync, then
    a re-run that must send nothing, then one changed row that must send exactly that row."""
    rows = "range(600000) t(g)" if project.source_kind == "duckdb" else "generate_series(0, 599999) t(g)"
    project.sql(f"create table people as select 'u' || g as id, g % 7 as n, 'plan ' || (g % 3) as plan from {rows}")
    project.write("  t:\n    kind: user\n    source: wh\n    sql: select id as user_id, n, plan from people\n    destinations: [out]\n")
    code, first = project.run_json("t")
    assert (code, first["runs"][0]["sent"]) == (0, 600_000)
    project.calls_path.unlink()
    code, again = project.run_json("t")
    assert (code, again["runs"][0]["changed"], again["runs"][0]["sent"]) == (0, 0, 0)
    project.sql("update people set n = 100 where id = 'u424242'")
    code, changed = project.run_json("t")
    assert (code, changed["runs"][0]["changed"], changed["runs"][0]["sent"]) == (0, 1, 1)
    assert [(c["userId"], c["traits"]) for c in project.calls()] == [("u424242", {"n": 100, "plan": "plan 0"})]
