"""Backends for the one state store suite: a local directory and the real local Postgres.

The Postgres backend uses ``TRAITS_TEST_PG`` (default: the local server as postgres) and a
fresh schema per test, dropped at the end of the session. Under ``CI=true`` an unreachable
Postgres fails the tests instead of skipping them, so CI cannot pass by skipping.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PG_DSN, require_postgres
from traits.state.base import StateStore


def postgres_or_skip() -> None:
    """Skip (or under CI fail) when the test Postgres cannot be reached."""
    require_postgres()


@dataclass
class Backend:
    kind: str  # local | postgres
    location: str  # a directory, or a DSN with ?schema=
    work_dir: Path

    def open(self) -> StateStore:
        return open_backend(self.kind, self.location, str(self.work_dir))


def open_backend(kind: str, location: str, work_dir: str) -> StateStore:
    """Also used by child processes, so it takes only strings."""
    if kind == "postgres":
        from traits.state.postgres import PostgresStateStore

        return PostgresStateStore(location, work_dir=Path(work_dir))
    from traits.state.local import LocalStateStore

    return LocalStateStore(Path(location))


@pytest.fixture(scope="session")
def pg_schemas() -> Iterator[list[str]]:
    created: list[str] = []
    yield created
    if created:
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            for schema in created:
                conn.execute(f'drop schema if exists "{schema}" cascade')


@pytest.fixture(params=["local", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path, pg_schemas: list[str]) -> Backend:
    if request.param == "local":
        return Backend("local", str(tmp_path / "state"), tmp_path / "state")
    postgres_or_skip()
    schema = f"traits_test_{uuid.uuid4().hex[:12]}"
    pg_schemas.append(schema)
    sep = "&" if "?" in PG_DSN else "?"
    return Backend("postgres", f"{PG_DSN}{sep}schema={schema}", tmp_path / "work")


@pytest.fixture
def store(backend: Backend) -> Iterator[StateStore]:
    opened = backend.open()
    yield opened
    opened.close()


@pytest.fixture
def open_store(backend: Backend) -> Iterator[Callable[[], StateStore]]:
    """More connections to the same store, closed at the end."""
    opened: list[StateStore] = []

    def make() -> StateStore:
        opened.append(backend.open())
        return opened[-1]

    yield make
    for s in opened:
        s.close()
