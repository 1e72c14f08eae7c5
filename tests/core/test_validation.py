"""Every validation rule rejects the whole result: exit 1, nothing sent, every snapshot untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Project

BASE = "select 'u' || g as user_id, g as n from generate_series(1, 20) as t(g)"


def trait(sql: str, kind: str = "user", extra: str = "") -> str:
    return f"""  t:
    kind: {kind}
    source: wh
    sql: "{sql}"
    destinations: [out]
{extra}"""


CASES = [
    ("no identity column", "select 'u' || g as id, g as n from generate_series(1, 5) as t(g)", "user", "no user_id column"),
    ("anonymous_id only", "select 'a' || g as anonymous_id, g as n from generate_series(1, 5) as t(g)", "user", "anonymous_id but no user_id"),
    ("account without group_id", BASE, "account", "no group_id column"),
    ("user trait with group_id", "select 'u' || g as user_id, 'g' as group_id, g as n from generate_series(1, 5) as t(g)", "user", "group_id as well"),
    ("no trait column", "select 'u' || g as user_id from generate_series(1, 5) as t(g)", "user", "no trait column"),
    ("null ids", "select case when g = 3 then null else 'u' || g end as user_id, g as n from generate_series(1, 5) as t(g)", "user", "null or empty user_id"),
    ("empty ids", "select case when g = 3 then '' else 'u' || g end as user_id, g as n from generate_series(1, 5) as t(g)", "user", "null or empty user_id"),
    ("duplicate ids", "select 'u' || (g % 3) as user_id, g as n from generate_series(1, 9) as t(g)", "user", "3 user_id value(s) appear more than once"),
    ("NaN", "select 'u' || g as user_id, case when g = 2 then cast('NaN' as double precision) else 1.0 end as x from generate_series(1, 5) as t(g)", "user", "NaN or Infinity in x (ids u2)"),
    ("Infinity", "select 'u' || g as user_id, case when g = 2 then cast('Infinity' as double precision) else 1.0 end as x from generate_series(1, 5) as t(g)", "user", "NaN or Infinity"),
    ("too large a row", "select 'u' || g as user_id, repeat('x', 40000) as big from generate_series(1, 3) as t(g)", "user", "too large to send"),
    ("float ids", "select cast(g as double precision) as user_id, g as n from generate_series(1, 3) as t(g)", "user", "identity values must be text or integers"),
    ("duplicate column names", "select 'u' || g as user_id, g as n, g as N from generate_series(1, 3) as t(g)", "user", "appears more than once"),
]


@pytest.mark.parametrize(("label", "sql", "kind", "message"), CASES, ids=[c[0] for c in CASES])
def test_rule_rejects_with_exit_1_and_nothing_sent(project: Project, label: str, sql: str, kind: str, message: str) -> None:
    if label == "duplicate column names" and project.source_kind == "duckdb":
        pytest.skip("DuckDB renames a duplicate column itself (n, n_1)")
    project.write(trait(BASE))
    assert project.run_json("t")[0] == 0
    calls_before = project.calls()
    state_before = project.state_files()
    project.write(trait(sql, kind))
    code, out = project.run_json("t")
    assert code == 1, out
    run = out["runs"][0]
    assert run["status"] == "invalid"
    assert message in run["error"], run["error"]
    assert run["sent"] == 0
    assert project.calls() == calls_before
    assert project.state_files() == state_before


def test_too_many_columns(project: Project) -> None:
    project.write(trait("select 'u' || g as user_id, g as a, g as b, g as c from generate_series(1, 3) as t(g)"), extra="settings:\n  max_columns: 3\n")
    code, out = project.run_json("t")
    assert code == 1
    assert "4 columns, more than max_columns = 3" in out["runs"][0]["error"]
    assert project.calls() == []


def test_max_rows_stops_the_query(project: Project) -> None:
    project.write(trait("select 'u' || g as user_id, g as n from generate_series(1, 1000000) as t(g)", extra="    max_rows: 100\n"))
    code, out = project.run_json("t")
    assert code == 1
    assert "more than max_rows = 100 rows" in out["runs"][0]["error"]
    assert project.calls() == []


def test_nested_values_need_allow_nested(duck_project: Project) -> None:
    sql = "select 'u' || g as user_id, [g, g + 1] as xs, {'a': g} as s from generate_series(1, 3) as t(g)"
    duck_project.write(trait(sql))
    code, out = duck_project.run_json("t")
    assert code == 1
    assert "nested values" in out["runs"][0]["error"]
    duck_project.write(trait(sql), extra="settings:\n  allow_nested: true\n")
    code, out = duck_project.run_json("t")
    assert code == 0, out
    assert duck_project.calls()[0]["traits"] == {"s": {"a": 1}, "xs": [1, 2]}


def test_non_finite_allowed_is_sent_as_null(duck_project: Project) -> None:
    sql = "select 'u1' as user_id, cast('NaN' as double) as x, 1.5 as y"
    duck_project.write(trait(sql), extra="settings:\n  allow_non_finite: true\n")
    assert duck_project.run_json("t")[0] == 0
    assert duck_project.calls()[0]["traits"] == {"x": None, "y": 1.5}


def test_preview_of_invalid_result_shows_problem_and_exits_1(project: Project) -> None:
    project.write(trait("select 'u' || (g % 2) as user_id, g as n from generate_series(1, 9) as t(g)"))
    result = project.cli("preview", "t")
    assert result.exit_code == 1
    assert "appear more than once" in result.stderr


def test_duplicate_of_an_unchanged_row_is_caught_after_a_sync(project: Project) -> None:
    """A re-run proves ids unique by digests; a duplicated unchanged row must still be caught."""
    project.write(trait(BASE))
    assert project.run_json("t")[0] == 0
    state_before = project.state_files()
    project.write(trait(BASE + " union all select 'u7' as user_id, 7 as n"))
    code, out = project.run_json("t")
    assert code == 1
    assert "appear more than once ('u7' ×2)" in out["runs"][0]["error"]
    assert project.state_files() == state_before
    project.write(trait(BASE + " union all select 'u7' as user_id, 8 as n"))
    code, out = project.run_json("t")
    assert code == 1
    assert "'u7' ×2" in out["runs"][0]["error"]


def test_a_first_batch_that_fails_validation_cancels_the_query(tmp_path: Path, pg_schema: str) -> None:
    """The warehouse query is cancelled, not left to run until its next batch (here: minutes)."""
    import subprocess
    import sys

    project = Project(tmp_path, "postgres-psycopg", pg_schema)
    # the first 1,000 rows come at once; the next would take five minutes
    project.write(
        "  t:\n    kind: user\n    source: wh\n    destinations: [out]\n"
        "    sql: select g as wrong_id, pg_sleep(case when g > 1000 then 300 else 0 end) as n from generate_series(1, 2000) g\n"
    )
    (project.root / "traits.yml").write_text((project.root / "traits.yml").read_text().replace("driver: psycopg}", "driver: psycopg, batch_rows: 1000}"))
    result = subprocess.run(
        [sys.executable, "-m", "traits.cli.main", "--config", str(project.root), "run", "t"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert result.returncode == 1, result.stderr
    assert "no user_id column" in result.stderr
