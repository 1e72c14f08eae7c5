"""``validate --connect`` checks what warehouse mode needs of the role: write access only in the
bookkeeping schema, SELECT on the data; and says which GRANT statements give it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import PG_DSN, require_postgres
from traits.cli.main import cli


@pytest.fixture
def role() -> Iterator[tuple[str, str]]:
    """A login role with SELECT on one table of a fresh schema, and that schema's name."""
    require_postgres()
    import psycopg

    name, schema = "r_" + uuid.uuid4().hex[:8], "d_" + uuid.uuid4().hex[:8]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        for statement in (
            f"create role {name} login password 'pw'", f"create schema {schema}",
            f"create table {schema}.people as select 'u' || g as id, g as n from generate_series(1, 5) g",
            f"grant usage on schema {schema} to {name}", f"grant select on {schema}.people to {name}",
        ):
            conn.execute(statement)  # type: ignore[arg-type]
    yield name, schema
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        for statement in (f"drop schema if exists {schema} cascade", f"drop schema if exists {name}_bk cascade",
                          f"drop owned by {name}", f"drop role {name}"):
            conn.execute(statement)  # type: ignore[arg-type]


def _validate(tmp_path: Path, role: str, schema: str) -> tuple[int, dict[str, object]]:
    dsn = PG_DSN.replace("postgres@", f"{role}:pw@", 1)
    (tmp_path / "traits.yml").write_text(
        f"sources:\n  wh: {{type: postgres, dsn: '{dsn}', diff: warehouse, bookkeeping_schema: {role}_bk}}\n"
        "destinations:\n  out: {type: file, path: out/calls.jsonl}\n"
        f"traits:\n  t: {{kind: user, source: wh, sql: 'select id as user_id, n from {schema}.people', destinations: [out]}}\n"
    )
    result = CliRunner().invoke(cli, ["--config", str(tmp_path), "validate", "--connect", "--json"], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


def test_a_select_only_role_is_told_what_to_grant_then_passes(tmp_path: Path, role: tuple[str, str]) -> None:
    name, schema = role
    code, out = _validate(tmp_path, name, schema)
    source = next(c for c in out["checks"] if c["kind"] == "source")  # type: ignore[attr-defined]
    assert code == 3, out
    assert not source["ok"], out
    assert f"CREATE SCHEMA IF NOT EXISTS {name}_bk AUTHORIZATION {name};" in source["error"], source["error"]
    assert "pw" not in json.dumps(out)

    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"create schema {name}_bk authorization {name}")  # type: ignore[arg-type]
    code, out = _validate(tmp_path, name, schema)
    source = next(c for c in out["checks"] if c["kind"] == "source")  # type: ignore[attr-defined]
    assert code == 0, source
    details = "\n".join(source["details"])
    assert f"bookkeeping schema {name}_bk: the role can create and drop tables in it" in details
    assert f"the role can write no table outside {name}_bk" in details

    # and the run works with exactly those grants, leaving the data untouched
    result = CliRunner().invoke(cli, ["--config", str(tmp_path), "run", "t", "--json"], catch_exceptions=False)
    run = json.loads(result.stdout)["runs"][0]
    assert (result.exit_code, run["sent"], run["rows_fetched"]) == (0, 5, 5), run
    result = CliRunner().invoke(cli, ["--config", str(tmp_path), "run", "t", "--json"], catch_exceptions=False)
    run = json.loads(result.stdout)["runs"][0]
    assert (result.exit_code, run["sent"], run["rows_fetched"]) == (0, 0, 0), run


def test_a_role_that_can_write_the_data_is_warned(tmp_path: Path, role: tuple[str, str]) -> None:
    name, schema = role
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"create schema {name}_bk authorization {name}")  # type: ignore[arg-type]
        conn.execute(f"grant delete on {schema}.people to {name}")  # type: ignore[arg-type]
    code, out = _validate(tmp_path, name, schema)
    source = next(c for c in out["checks"] if c["kind"] == "source")  # type: ignore[attr-defined]
    assert code == 0
    assert any(f"can also write 1 table(s) outside {name}_bk ({schema}.people)" in d for d in source["details"]), source["details"]
