"""A demo project with real runs, and the console serving it over real HTTP.

The repository's demo config is copied, ``product_engagement`` also sends to a webhook and a
Segment-compatible endpoint on a local receiver (secrets from the environment), and the
receiver answers 400 to every call for ``user_00002`` on the webhook: each run gives it up.
Then ``traits demo``, a run, ``traits demo --mutate`` and a second run, on the local state
store and on Postgres. The console is ``traits console``'s app, served by uvicorn on port 0.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.conftest import PG_DSN, require_postgres
from tests.destinations.receiver import Received, Receiver, Reply

ROOT = Path(__file__).resolve().parents[2]
REJECTED_USER = "user_00002"
HOOK_SECRET = "whsec_" + "Y29uc29sZS10ZXN0LXNpZ25pbmcta2V5LTEyMzQ="
WRITE_KEY = "wk_console_test_4f1a9c2e77"
SECRETS = (HOOK_SECRET, WRITE_KEY, HOOK_SECRET.removeprefix("whsec_"))
REJECTION = f'{{"error": "profile locked", "user": "{REJECTED_USER}"}}'


def reject_one(request: Received) -> Reply:
    if request.path == "/hook" and any(c.get("userId") == REJECTED_USER for c in request.calls):
        return Reply(status=400, body=REJECTION.encode())
    return Reply()


class DemoConsole:
    """The demo project after two runs, its receiver, and a console serving it."""

    def __init__(self, root: Path, receiver: Receiver, state: str) -> None:
        self.root = root
        self.receiver = receiver
        self.state = state
        self.results: list[dict[str, Any]] = []
        self.server: Any = None
        self.base = ""

    def cli(self, *args: str) -> Any:
        from traits.cli.main import cli

        return CliRunner().invoke(cli, ["--config", str(self.root), *args], catch_exceptions=False)

    def cli_json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        return json.loads(result.stdout)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.base + path, timeout=30, **kwargs)

    def api(self, path: str) -> Any:
        response = self.get("/api" + path)
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
        return response.json()

    def file_calls(self) -> list[dict[str, Any]]:
        path = self.root / "out" / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line]


def build_project(root: Path, receiver: Receiver, state: str) -> DemoConsole:
    shutil.copytree(ROOT / "config", root, ignore=shutil.ignore_patterns(".traits", "out", "*.duckdb", "*.duckdb.wal"), dirs_exist_ok=True)
    text = (root / "traits.yml").read_text()
    marker = "    sql_file: sql/product_engagement.sql\n    destinations: [calls_file]\n"
    assert marker in text, "the demo config changed: update this fixture"
    text = text.replace(marker, "    sql_file: sql/product_engagement.sql\n    destinations: [calls_file, crm_hook, segment_dest]\n")
    text = text.replace("destinations:\n  calls_file:", (
        "destinations:\n"
        f"  crm_hook: {{type: webhook, url: '{receiver.url}/hook', secret: '${{env:CONSOLE_TEST_HOOK_SECRET}}', max_attempts: 2, retry_backoff: 0s}}\n"
        f"  segment_dest: {{type: segment, endpoint: '{receiver.url}', write_key: '${{env:CONSOLE_TEST_WRITE_KEY}}'}}\n"
        "  calls_file:"
    ))
    text = text.replace("settings:\n  state: .traits", f"settings:\n  state: '{state}'")
    (root / "traits.yml").write_text(text)
    return DemoConsole(root, receiver, state)


@pytest.fixture(scope="module", params=["local", pytest.param("postgres", marks=pytest.mark.postgres)])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoConsole]:
    schema = None
    if request.param == "postgres":
        require_postgres()
        schema = "console_" + uuid.uuid4().hex[:10]
        state = f"{PG_DSN}{'&' if '?' in PG_DSN else '?'}schema={schema}"
    else:
        state = ".traits"
    with pytest.MonkeyPatch.context() as mp, Receiver(reject_one) as receiver:
        mp.setenv("CONSOLE_TEST_HOOK_SECRET", HOOK_SECRET)
        mp.setenv("CONSOLE_TEST_WRITE_KEY", WRITE_KEY)
        for name in ("TRAITS_STATE", "TRAITS_CONSOLE_TOKEN", "TRAITS_CONSOLE_USER", "TRAITS_CONSOLE_PASSWORD", "TRAITS_CONFIG"):
            mp.delenv(name, raising=False)
        project = build_project(tmp_path_factory.mktemp(f"console-{request.param}"), receiver, state)
        assert project.cli("demo").exit_code == 0
        project.results.append(project.cli_json("run", "--all"))
        assert project.cli("demo", "--mutate").exit_code == 0
        project.results.append(project.cli_json("run", "--all"))
        from traits.cli.cmd_console import ReloadingConfig
        from traits.console.serve import AppServer, console_app

        project.server = AppServer(console_app(ReloadingConfig(project.root), "127.0.0.1"), "127.0.0.1", 0)
        project.server.start()
        project.base = f"http://{project.server.address}"
        try:
            yield project
        finally:
            project.server.stop()
            if schema is not None:
                import psycopg

                with psycopg.connect(PG_DSN, autocommit=True) as conn:
                    conn.execute(f'drop schema if exists "{schema}" cascade')  # type: ignore[arg-type]


def artifacts_dir() -> Path:
    path = Path(os.environ.get("TRAITS_TEST_ARTIFACTS", ROOT / "tests" / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path
