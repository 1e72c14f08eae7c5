"""The end-to-end cases run on every local engine and in both diff modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Project, make_project


@pytest.fixture(params=["duckdb", "postgres-adbc", "postgres-psycopg", "postgres-adbc+warehouse"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """The same project on DuckDB and the real Postgres (both drivers), and with ``diff: warehouse``
    on Postgres (DuckDB's warehouse mode runs the kill and resume cases below, and the
    conformance suite's lockstep cases)."""
    return make_project(request, tmp_path)


@pytest.fixture(params=["duckdb", "duckdb+warehouse"])
def duck_project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """A DuckDB project, in both diff modes."""
    return make_project(request, tmp_path)
