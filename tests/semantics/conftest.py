"""A project on the real Postgres (the warehouse) sending to a local Segment-compatible receiver,
with its state in the local directory or in Postgres."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "destinations"))

from receiver import Receiver

from tests.conftest import PG_DSN, Project


class SemanticsProject(Project):
    def __init__(self, root: Path, pg_schema: str, receiver: Receiver, state: str) -> None:
        super().__init__(root, "postgres-psycopg", pg_schema)
        self.receiver = receiver
        self.state = state

    def destinations_yaml(self, **extra: Any) -> str:
        seg = {"type": "segment", "write_key": "k", "endpoint": self.receiver.url, "max_batch_calls": 50, "retry_backoff": 0.01, **extra}
        return f"  seg: {json.dumps(seg)}\n"

    def settings_yaml(self) -> str:
        return f"settings:\n  state: '{self.state}'\n" if self.state.startswith("postgresql://") else ""

    def configure(self, traits: str, **destination: Any) -> None:
        self.write(traits, extra=self.settings_yaml(), destinations=self.destinations_yaml(**destination))

    def run_json_cmd(self, *args: str) -> tuple[int, dict[str, Any]]:
        result = self.cli(*args, "--json")
        return result.exit_code, json.loads(result.stdout)

    def calls_since(self, mark: int) -> list[dict[str, Any]]:
        return [c for r in self.receiver.snapshot()[mark:] if r.accepted for c in r.calls]

    def mark(self) -> int:
        return len(self.receiver.snapshot())

    def profiles(self, id_field: str = "userId") -> dict[str, dict[str, Any]]:
        """What the receiver holds, leaving out profiles whose every trait is null (cleared)."""
        return {k: v for k, v in self.receiver.profiles(id_field).items() if any(x is not None for x in v.values())}


@pytest.fixture(params=["local", "postgres"])
def semantics(request: pytest.FixtureRequest, tmp_path: Path, pg_schema: str) -> Iterator[SemanticsProject]:
    state_schema = None
    if request.param == "postgres":
        state_schema = "st_" + uuid.uuid4().hex[:10]
        sep = "&" if "?" in PG_DSN else "?"
        state = f"{PG_DSN}{sep}schema={state_schema}"
    else:
        state = ".traits"
    with Receiver() as receiver:
        yield SemanticsProject(tmp_path, pg_schema, receiver, state)
    if state_schema is not None:
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'drop schema if exists "{state_schema}" cascade')  # type: ignore[arg-type]
