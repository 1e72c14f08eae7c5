"""The SQLAlchemy source through the command line, on the real MariaDB: the URL's password never shows."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from click.testing import CliRunner

from traits.cli.main import cli

from .engines import Engine


def _project(engine: Engine, root: Path, table: str) -> None:
    (root / "traits.yml").write_text(
        "sources:\n  app: {type: sqlalchemy, url: '${env:APP_DB_URL}', batch_rows: 1000}\n"
        "destinations:\n  out: {type: file, path: out/calls.jsonl}\n"
        "traits:\n"
        f"  people: {{kind: user, source: app, sql: 'select id as user_id, score from {table}', tags: [app], destinations: [out]}}\n"
        f"  other: {{kind: user, source: app, sql: 'select id as user_id, score + 1 as s2 from {table}', tags: [nightly]}}\n"
    )


def test_validate_run_and_preview_never_print_the_password(mariadb_engine: Engine, tmp_path: Path) -> None:
    table = f"{mariadb_engine.conf}.cli_{uuid.uuid4().hex[:8]}"
    mariadb_engine.admin(f"create table {table} (id varchar(20), score integer); insert into {table} values ('u1', 1), ('u2', 2)")
    _project(mariadb_engine, tmp_path, table)
    url = mariadb_engine.source["url"]
    password = url.split(":")[2].split("@")[0]
    env = {"APP_DB_URL": url}
    runner = CliRunner()

    checked = runner.invoke(cli, ["--config", str(tmp_path), "validate", "--connect", "--json"], env=env, catch_exceptions=False)
    assert checked.exit_code == 0, checked.output
    source = json.loads(checked.stdout)["checks"][0]
    assert source["ok"] is True
    assert any(table in line for line in source["details"])
    assert "read-only transaction" in source["details"][0]

    ran = runner.invoke(cli, ["--config", str(tmp_path), "run", "--select", "tag:app", "--json"], env=env, catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    assert [(r["trait"], r["sent"]) for r in json.loads(ran.stdout)["runs"]] == [("people", 2)]

    previewed = runner.invoke(cli, ["--config", str(tmp_path), "preview", "--select", "tag:app tag:nightly", "--json"], env=env,
                              catch_exceptions=False)
    assert previewed.exit_code == 0, previewed.output
    previews = json.loads(previewed.stdout)["previews"]
    assert [(p["trait"], p["rows"], p["valid"]) for p in previews] == [("people", 2, True), ("other", 2, True)]
    assert previews[0]["destinations"]["out"]["unchanged"] == 2

    wrong = url.replace(f":{password}@", ":not-the-password@")
    failed = runner.invoke(cli, ["--config", str(tmp_path), "run", "people", "--json"], env={"APP_DB_URL": wrong}, catch_exceptions=False)
    assert failed.exit_code == 3
    assert "refused the credentials" in failed.stderr
    for result in (checked, ran, previewed, failed):
        assert password not in result.output
    assert "not-the-password" not in failed.output
