"""A run resumed from its staged result sends exactly what its first attempt sent, byte for byte.

Postgres numerics with and without a declared scale (ADBC hands the scale-less ones over as
text) are the case that once changed type on resume. Every body is parsed strictly, so a NaN
that reaches a body fails the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import Project, strict_json

ROWS = 60_000
TRAIT = """  t:
    kind: user
    source: wh
    sql: select id as user_id, coalesce(amount, 0) + 0 as amount, price, n from people
    destinations: [out]
    max_exit_ratio: 1
"""


@pytest.fixture
def pg_project(tmp_path: Path, pg_schema: str) -> Project:
    return Project(tmp_path, "postgres-adbc", pg_schema)


def _start(project: Project) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "traits.cli.main", "--config", str(project.root), "run", "t"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )


def _lines(project: Project) -> int:
    return project.calls_path.read_bytes().count(b"\n") if project.calls_path.exists() else 0


@pytest.mark.slow
def test_killed_and_resumed_runs_resend_identical_bodies_and_types(pg_project: Project) -> None:
    project = pg_project
    project.sql(
        f"create table people as select 'u' || g as id, (g * 1.37)::numeric as amount, (g * 0.5)::numeric(12, 2) as price, g as n "
        f"from generate_series(1, {ROWS}) g"
    )
    project.write(TRAIT, destinations="  out: {type: file, path: out/calls.jsonl, batch_size: 500}\n")
    kills = 0
    for round_ in range(6):
        if round_ == 3:
            project.sql("update people set amount = amount + 1, price = price + 1 where n % 3 = 0")
        before = _lines(project)
        process = _start(project)
        target = before + 2_000 * (round_ % 3 + 1)
        deadline = time.monotonic() + 120
        while _lines(project) < target and process.poll() is None:
            assert time.monotonic() < deadline, "the run neither delivered nor ended"
            time.sleep(0.005)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
    final = _start(project)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    assert kills >= 3

    # every re-sent call is byte for byte the call first sent under its messageId
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for line in project.calls_path.read_bytes().splitlines():
        call = strict_json(line)
        bodies[call["messageId"]].add(line)
    resent = [m for m, variants in bodies.items() if len(variants) > 1]
    assert resent == [], f"{len(resent)} messageIds carried different bodies, e.g. {sorted(bodies[resent[0]])}"

    final_values = project.final()
    assert len(final_values) == ROWS
    for traits in final_values.values():
        assert isinstance(traits["amount"], int | float), traits
        assert isinstance(traits["price"], int | float), traits
    assert final_values["u3"]["amount"] == pytest.approx(3 * 1.37 + 1)
    assert final_values["u3"]["price"] == pytest.approx(2.5)


def test_the_staged_file_keeps_what_the_first_batch_said(pg_project: Project) -> None:
    """The types a resumed run reads from the staged file are those a plain run took from the batch."""
    import pyarrow as pa

    from traits.config import load_config
    from traits.pipeline.stage import stage
    from traits.pipeline.validate import Fingerprinter
    from traits.warehouses import open_warehouse

    project = pg_project
    project.sql("create table people as select 'u1' as id, 1.5::numeric as amount, 2.25::numeric(6, 2) as price, 1 as n")
    project.write(TRAIT)
    config = load_config(project.root)
    from traits import columnar

    con = columnar.connect()
    fingerprinter = Fingerprinter(con, "t", config.traits["t"], config.settings)
    with open_warehouse("wh", config.sources["wh"], config.directory) as warehouse:
        staged = stage(warehouse.stream(config.trait_sql("t"), max_rows=10), project.root / "staged.parquet", trait="t", augment=fingerprinter.add)
    import pyarrow.parquet as pq

    written = pq.read_schema(staged.path)
    assert fingerprinter.shape is not None
    for column in fingerprinter.shape.traits:
        field = written.field(column.name)
        assert field.metadata == staged.schema.field(column.name).metadata, column.name
    assert written.field("amount").metadata == {b"sql_traits.type": b"decimal"}
    assert isinstance(staged.schema.field("amount").type, pa.DataType)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numerics_are_invalid_unless_allowed(pg_project: Project, value: str) -> None:
    project = pg_project
    project.sql(f"create table people as select 'u' || g as id, case when g = 2 then '{value}'::numeric else g::numeric end as amount, "
                "1.0::numeric(4, 1) as price, g as n from generate_series(1, 3) g")
    project.write(TRAIT)
    result = project.cli("run", "t")
    assert result.exit_code == 1
    assert "amount" in result.stderr
    assert "u2" in result.stderr
    assert project.calls() == []
    project.write(TRAIT, extra="settings:\n  allow_non_finite: true\n")
    assert project.cli("run", "t").exit_code == 0
    calls = {c["userId"]: c["traits"] for c in project.calls()}  # strict: a NaN would not parse
    assert calls["u2"]["amount"] is None
    assert calls["u1"]["amount"] == 1
