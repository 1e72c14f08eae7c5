"""Shared fixtures: a throwaway project (config dir + warehouse + file destination) and Postgres."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

PG_DSN = os.environ.get("TRAITS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def postgres_available() -> str | None:
    """None when the local Postgres answers; otherwise why not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            conn.execute("select 1")
    except psycopg.Error as e:
        return f"PostgreSQL at {PG_DSN} is not reachable: {str(e).strip().splitlines()[0]}"
    return None


def require_postgres() -> None:
    """Skip without Postgres, except under CI=true, where its absence is a failure."""
    why = postgres_available()
    if why is not None:
        if IN_CI:
            pytest.fail(f"CI needs PostgreSQL: {why}")
        pytest.skip(why)


#: test files whose tests share a module-scoped fixture that is slow to build, parametrized by
#: state backend (the console's demo: two runs of the demo project and a console; a browser):
#: under pytest-xdist each file and backend runs on one worker, so each is built once
SHARED_FIXTURE_FILES = ("tests/console/test_api.py", "tests/console/test_browser.py")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` (pyproject's addopts), grouping by ``SHARED_FIXTURE_FILES``.

    pytest-xdist 3.8's own grouping (the ``xdist_group`` mark) rewrites ``item._nodeid``, which
    pytest 9.2 no longer reads, so that mark silently groups nothing; the scheduler here groups
    by node id instead (it runs in the controller, which sees only node ids)."""
    if config.getvalue("dist") != "loadgroup":
        return None  # another --dist: xdist's own scheduler
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path, _, rest = nodeid.partition("::")
            if path not in SHARED_FIXTURE_FILES:
                return nodeid  # every other test is scheduled alone, as under --dist load
            # ``test_x[local]``, ``test_y[postgres-/api/nothing]``: the backend's id comes first
            backend = rest.partition("[")[2].split("-")[0].rstrip("]")
            return f"{path}[{backend}]"

    return SharedFixtureScheduling(config, log)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"not strict JSON: {name}")


def strict_json(text: str | bytes) -> Any:
    """``json.loads`` that refuses NaN and ±Infinity, as a strict JSON parser (a collector) does."""
    return json.loads(text, parse_constant=_refuse_constant)


class Project:
    """A config directory with one source, a file destination and helpers to run commands."""

    def __init__(self, root: Path, source_kind: str, pg_schema: str | None = None, diff: str = "local") -> None:
        self.root = root
        self.source_kind = source_kind
        self.pg_schema = pg_schema
        #: where the diff runs (``diff:`` on the source); warehouse mode keeps its tables in
        #: ``bookkeeping_schema`` (on Postgres, one per test, beside the test's schema)
        self.diff = diff
        self.calls_path = root / "out" / "calls.jsonl"
        if source_kind == "duckdb":
            self.sql("select 1")  # the warehouse file exists from the start

    # -- the warehouse ------------------------------------------------------------------------
    def sql(self, statement: str) -> None:
        if self.source_kind == "duckdb":
            import duckdb

            con = duckdb.connect(str(self.root / "wh.duckdb"))
            try:
                con.execute(statement)
            finally:
                con.close()
        else:
            import psycopg

            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f"set search_path to {self.pg_schema}")
                conn.execute(statement)  # type: ignore[arg-type]

    @property
    def bookkeeping_schema(self) -> str:
        return f"{self.pg_schema}_bk" if self.pg_schema else "sql_traits"

    def source_yaml(self) -> str:
        mode = "" if self.diff == "local" else f", diff: {self.diff}, bookkeeping_schema: {self.bookkeeping_schema}"
        if self.source_kind == "duckdb":
            return f"  wh: {{type: duckdb, path: wh.duckdb{mode}}}\n"
        dsn = f"{PG_DSN}?options=-csearch_path%3D{self.pg_schema}"
        driver = self.source_kind.split("-")[1] if "-" in self.source_kind else "auto"
        return f"  wh: {{type: postgres, dsn: '{dsn}', driver: {driver}{mode}}}\n"

    def write(self, traits: str, extra: str = "", destinations: str | None = None) -> None:
        dests = destinations or "  out: {type: file, path: out/calls.jsonl}\n"
        (self.root / "traits.yml").write_text(f"sources:\n{self.source_yaml()}destinations:\n{dests}traits:\n{traits}{extra}")

    # -- commands -----------------------------------------------------------------------------
    def cli(self, *args: str, env: dict[str, str] | None = None) -> Result:
        from traits.cli.main import cli

        runner = CliRunner()
        return runner.invoke(cli, ["--config", str(self.root), *args], env=env, catch_exceptions=False)

    def run_json(self, *args: str) -> tuple[int, dict[str, Any]]:
        result = self.cli("run", *args, "--json")
        return result.exit_code, json.loads(result.stdout)

    # -- what the file destination holds --------------------------------------------------------
    def calls(self) -> list[dict[str, Any]]:
        if not self.calls_path.exists():
            return []
        return [strict_json(line) for line in self.calls_path.read_text().splitlines() if line]

    def final(self) -> dict[str, dict[str, Any]]:
        """Each id's traits as a collector would hold them after applying every call in order."""
        state: dict[str, dict[str, Any]] = {}
        for call in self.calls():
            key = call.get("userId") if call["type"] == "identify" else call["groupId"]
            state.setdefault(key, {}).update(call["traits"])
        return {k: v for k, v in state.items() if any(x is not None for x in v.values())}

    def state_files(self) -> dict[str, bytes]:
        """Every snapshot file's bytes, to prove a run changed nothing."""
        base = self.root / ".traits" / "snapshots"
        return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()} if base.exists() else {}


@pytest.fixture
def duck_project(tmp_path: Path) -> Project:
    return Project(tmp_path, "duckdb")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    require_postgres()
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:10]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"create schema {schema}")  # type: ignore[arg-type]
    yield schema
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"drop schema {schema} cascade")  # type: ignore[arg-type]
        conn.execute(f"drop schema if exists {schema}_bk cascade")  # type: ignore[arg-type]


def make_project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """``request.param``: the engine (duckdb, postgres-adbc, postgres-psycopg), then ``+warehouse``
    for the warehouse-side diff."""
    kind, _, diff = str(request.param).partition("+")
    if kind == "duckdb":
        return Project(tmp_path, "duckdb", diff=diff or "local")
    schema: str = request.getfixturevalue("pg_schema")
    return Project(tmp_path, kind, schema, diff=diff or "local")


@pytest.fixture(params=["duckdb", "postgres-adbc", "postgres-psycopg"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """The same project on each local engine: DuckDB, and the real Postgres through both drivers."""
    return make_project(request, tmp_path)
