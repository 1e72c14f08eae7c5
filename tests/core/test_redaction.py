"""Only secret fields are secrets; they never appear in any encoding; `--json` and JSON logs always parse."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from tests.conftest import Project, require_postgres
from tests.destinations.receiver import Received, Receiver, Reply
from traits.config.env import encodings, redact

#: a write key with every character that changes between encodings
SECRET = 'wk"quote\\slash/p%ct+plus sp'


def forms(secret: str) -> set[str]:
    return {
        secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=True)[1:-1], quote(secret, safe=""), quote(secret),
        quote_plus(secret), base64.b64encode(f"{secret}:".encode()).decode(),
    }


def leaked(text: str, secret: str = SECRET) -> list[str]:
    return [f for f in forms(secret) if f in text]


def _cli(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # a real process: stderr is not a terminal there, so its logs are JSON lines
    return subprocess.run(
        [sys.executable, "-m", "traits.cli.main", *args, "--config", str(root)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), **(env or {})},
    )


def _json_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_every_encoding_of_a_secret_is_known() -> None:
    assert forms(SECRET) <= encodings(SECRET)


def test_env_defaults_that_collide_with_counts_are_not_secrets(duck_project: Project) -> None:
    project = duck_project
    project.sql("create table people as select 'u' || g as id, g as n from range(5432) t(g)")
    project.write(
        "  t:\n    kind: user\n    source: wh\n    sql: select id as user_id, n from people\n    destinations: [out]\n",
        destinations="  out: {type: file, path: out/calls.jsonl, batch_size: '${env:FILE_BATCH_UNSET:-5432}'}\n",
    )
    result = _cli(project.root, "run", "--all", "--json", "--debug")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)  # parses
    assert out["runs"][0]["rows"] == 5432
    assert out["runs"][0]["sent"] == 5432
    assert "***" not in result.stdout
    logs = _json_lines(result.stderr)  # every JSON log line parses
    assert logs
    assert all("***" not in json.dumps(line) for line in logs)
    history = json.loads(_cli(project.root, "history", "--json").stdout)
    assert history["runs"][0]["rows"] == 5432


def test_a_default_user_is_printed_by_validate_connect(tmp_path: Path) -> None:
    require_postgres()
    (tmp_path / "traits.yml").write_text(
        "sources:\n  wh: {type: postgres, host: 127.0.0.1, port: '${env:PGPORT_UNSET:-5432}', database: postgres, user: '${env:PGUSER_UNSET:-postgres}'}\n"
        "traits:\n  t: {kind: user, source: wh, sql: 'select 1 as user_id, 2 as n'}\n"
    )
    result = _cli(tmp_path, "validate", "--connect", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    details = " ".join(out["checks"][0]["details"])
    assert "postgres" in details
    assert "***" not in result.stdout


def test_a_secret_echoed_by_a_destination_never_appears(duck_project: Project) -> None:
    """A collector that echoes the credential back in every form: nothing of it reaches any output."""

    def echo(request: Received) -> Reply:
        auth = request.headers.get("authorization", "")
        key = base64.b64decode(auth.removeprefix("Basic ")).decode().removesuffix(":")
        body = json.dumps({"error": f"bad key {key!r} {auth} url={quote(key, safe='')} plus={quote_plus(key)}", "raw": key})
        return Reply(status=400, body=body.encode())

    project = duck_project
    project.sql("create table people as select 'u' || g as id, g as n from range(3) t(g)")
    with Receiver(echo) as receiver:
        env = {"SEG_KEY": SECRET}
        project.write(
            "  t:\n    kind: user\n    source: wh\n    sql: select id as user_id, n from people\n    destinations: [seg]\n",
            destinations=(
                f"  seg: {{type: segment, write_key: '${{env:SEG_KEY}}', endpoint: '{receiver.url}', max_attempts: 1, "
                "connect_timeout: 0.5, timeout: 1, retry_backoff: 0.01, retry_backoff_max: 0.02}\n"
            ),
        )
        outputs = []
        run = _cli(project.root, "run", "--all", "--json", "--debug", env=env)
        assert run.returncode == 4, run.stderr
        assert receiver.snapshot(), "the collector was asked"
        outputs.append(run.stdout)
        outputs.append(run.stderr)
        json.loads(run.stdout)
        _json_lines(run.stderr)
        for args in (("history", "--json"), ("history",), ("status", "--json"), ("validate", "--connect", "--json"), ("validate", "--connect")):
            result = _cli(project.root, *args, env=env)
            outputs += [result.stdout, result.stderr]
            if "--json" in args:
                json.loads(result.stdout)
        record = json.loads(outputs[2])["runs"][0]
        assert record["destinations"]["seg"]["rejections"], "the destination's answer is kept"
    for text in outputs:
        assert leaked(text) == [], text[:2000]


def test_state_store_credentials_never_appear_and_a_state_error_exits_5(duck_project: Project) -> None:
    project = duck_project
    project.write("  t: {kind: user, source: wh, sql: 'select 1 as user_id, 2 as n', destinations: [out]}\n")
    password = 'st"ate\\pw/%x'
    state = f"postgresql://postgres:{quote(password, safe='')}@127.0.0.1:1/postgres"
    for args in (("run", "--all", "--json"), ("history", "--json"), ("status", "--json")):
        result = _cli(project.root, *args, env={"TRAITS_STATE": state})
        assert result.returncode == 5, (args, result.stdout, result.stderr)
        out = json.loads(result.stdout)
        assert out["exit_code"] == 5 or any(r.get("exit_code") == 5 for r in out.get("runs", []))
        assert leaked(result.stdout + result.stderr, password) == []


@pytest.fixture(autouse=True)
def _forget_secrets() -> None:
    redact.clear()

