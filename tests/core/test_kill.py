"""A run killed with SIGKILL at any point loses nothing: the next run ends with the right values."""

from __future__ import annotations

import pytest

from tests.conftest import Project
from tests.sigkill import sigkill_rounds

ROWS = 60_000


def expected(project: Project) -> dict[str, dict[str, object]]:
    if project.source_kind == "duckdb":
        import duckdb

        con = duckdb.connect(str(project.root / "wh.duckdb"), read_only=True)
        try:
            rows = con.execute("select id, n, label from people").fetchall()
        finally:
            con.close()
    else:
        import psycopg

        from tests.conftest import PG_DSN

        with psycopg.connect(PG_DSN) as conn:
            rows = conn.execute(f"select id, n, label from {project.pg_schema}.people").fetchall()  # type: ignore[arg-type]
    return {r[0]: {"label": r[2], "n": r[1]} for r in rows}


def run_tables(project: Project) -> list[str]:
    """The per-run tables left in the bookkeeping schema (warehouse mode)."""
    if project.source_kind == "duckdb":
        import duckdb

        con = duckdb.connect(str(project.root / "wh.duckdb.sql_traits" / "t.duckdb"), read_only=True)
        try:
            tables = [str(r[0]) for r in con.execute("select table_name from duckdb_tables()").fetchall()]
        finally:
            con.close()
    else:
        import psycopg

        from tests.conftest import PG_DSN

        with psycopg.connect(PG_DSN) as conn:
            rows = conn.execute("select table_name from information_schema.tables where table_schema = %s", (project.bookkeeping_schema,))
            tables = [str(r[0]) for r in rows.fetchall()]
    return [t for t in tables if t.startswith("run_")]


@pytest.mark.slow
def test_sigkill_at_random_points_then_a_final_run_holds_every_value(duck_project: Project) -> None:
    kill_rounds(duck_project)


@pytest.mark.slow
@pytest.mark.parametrize("project", ["postgres-adbc+warehouse"], indirect=True)
def test_sigkill_at_random_points_on_postgres_in_warehouse_mode(project: Project) -> None:
    """The same rounds with the diff in the real Postgres: its per-run tables, folds and resumes."""
    kill_rounds(project)


def kill_rounds(project: Project) -> None:
    duck = project.source_kind == "duckdb"
    rows = f"range({ROWS}) t(g)" if duck else f"generate_series(0, {ROWS - 1}) t(g)"
    project.sql(f"create table people as select 'u' || g as id, g % 13 as n, 'v0' as label from {rows}")

    def some(salt: object, m: int) -> str:
        return f"hash(id, '{salt}') % {m} = 0" if duck else f"abs(hashtext(id || '{salt}')) % {m} = 0"

    def change(round_: int) -> None:
        # a day of change: some rows change, some leave, some arrive
        project.sql(f"update people set label = 'v{round_ + 1}' where {some(round_, 4)}")
        project.sql(f"delete from people where {some(str(round_) + 'x', 50)}")
        new = "range(500) t(g)" if duck else "generate_series(0, 499) t(g)"
        project.sql(f"insert into people select 'n{round_}_' || g, g, 'new' from {new}")

    sigkill_rounds(project, sql="select id as user_id, n, label from people", change=change,
                   expected=lambda: expected(project), run_tables=lambda: run_tables(project))
