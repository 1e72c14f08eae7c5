"""``traits console`` as a real process: it serves the pages, reloads an edited config, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.scheduler.conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_console_command_serves_and_stops(tmp_path: Path) -> None:
    trait = "  {name}:\n    kind: user\n    source: wh\n    sql: select 'a' as user_id, 1 as n\n"
    config = tmp_path / "traits.yml"
    config.write_text("sources:\n  wh: {type: duckdb, path: wh.duckdb}\ntraits:\n" + trait.format(name="first"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAITS_CONSOLE_", "TRAITS_STATE"))}
    log = tmp_path / "console.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "traits.cli.main", "--config", str(tmp_path), "console", "--port", str(port)],
            stdout=out, stderr=out, env={**env, "PYTHONPATH": str(ROOT)},
        )
    base = f"http://127.0.0.1:{port}"

    def names() -> list[str] | None:
        try:
            return [t["name"] for t in httpx.get(base + "/api/traits", timeout=5).json()["traits"]]
        except httpx.HTTPError:
            return None

    try:
        assert wait_for(names, "the console to answer", 30) == ["first"]
        assert "first" in httpx.get(base + "/", timeout=5).text
        assert httpx.get(base + "/metrics", timeout=5).status_code == 404  # no daemon, no metrics
        # an edited config is picked up without a restart
        config.write_text(config.read_text() + trait.format(name="second"))
        os.utime(config, (config.stat().st_atime, config.stat().st_mtime + 5))
        assert wait_for(lambda: names() == ["first", "second"], "the edited config", 10)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0, log.read_text()
    assert "console serving http://127.0.0.1:" in log.read_text()
