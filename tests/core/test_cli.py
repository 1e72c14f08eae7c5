"""The commands around a run: preview, history, status, reset, locks, --json everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import Project

TRAIT = """  t:
    kind: user
    source: wh
    sql: select id as user_id, n from people
    destinations: [out]
"""


def setup(project: Project, rows: int = 30) -> None:
    project.sql(f"create table people as select 'u' || g as id, g as n from range({rows}) t(g)")
    project.sql("create table known as select 'u' || g as id from range(5) t(g)")
    project.write(TRAIT)


def test_preview_shows_sample_known_marks_and_plan(duck_project: Project) -> None:
    setup(duck_project)
    result = duck_project.cli("preview", "t", "--limit", "3", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["rows"] == 30
    assert data["destinations"]["out"]["added"] == 30
    assert len(data["sample"]) == 3
    assert all(not s["known"] for s in data["sample"])  # nothing synced yet
    assert duck_project.calls() == []
    duck_project.run_json("t")
    data = json.loads(duck_project.cli("preview", "t", "--json").stdout)
    assert data["destinations"]["out"]["unchanged"] == 30
    assert all(s["known"] for s in data["sample"])
    assert data["known_by"] == "ids already synced"


def test_preview_marks_ids_by_the_identity_table(duck_project: Project) -> None:
    setup(duck_project)
    duck_project.write(TRAIT + "    identity: {table: known, column: id}\n")
    data = json.loads(duck_project.cli("preview", "t", "--limit", "30", "--json").stdout)
    known = {s["id"] for s in data["sample"] if s["known"]}
    assert known == {f"u{i}" for i in range(5)}
    text = duck_project.cli("preview", "t").stdout
    assert "✓" in text
    assert "?" in text
    assert "a run now would send" in text


def test_history_and_status_json(duck_project: Project) -> None:
    setup(duck_project)
    duck_project.run_json("t")
    duck_project.sql("update people set n = -1 where id = 'u1'")
    duck_project.run_json("t")
    runs = json.loads(duck_project.cli("history", "t", "--json").stdout)["runs"]
    assert [r["sent"] for r in runs] == [1, 30]
    assert runs[0]["destinations"]["out"]["changed"] == 1
    status = json.loads(duck_project.cli("status", "--json").stdout)["traits"]
    assert status[0]["trait"] == "t"
    assert status[0]["health"] == "healthy"
    assert status[0]["last_run"]["run_id"] == runs[0]["run_id"]
    assert "t" in duck_project.cli("history").stdout


def test_reset_makes_the_next_run_send_everything(duck_project: Project) -> None:
    setup(duck_project)
    duck_project.run_json("t")
    result = duck_project.cli("reset", "t", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["reset"] == ["out"]
    assert duck_project.run_json("t")[1]["runs"][0]["sent"] == 30
    assert duck_project.cli("reset", "t", "--destination", "nope").exit_code == 2


def test_warehouse_error_exit_3_one_line(duck_project: Project) -> None:
    duck_project.write(TRAIT.replace("from people", "from missing_table"))
    code, out = duck_project.run_json("t")
    assert code == 3
    assert "missing_table" in out["runs"][0]["error"]
    duck_project.write(TRAIT.replace("select id", "selec id"))
    result = duck_project.cli("run", "t")
    assert result.exit_code == 3
    assert "syntax error" in result.stderr.lower()


def test_history_reads_while_another_process_runs(duck_project: Project) -> None:
    """The state store is shared safely: readers never fail or see corrupt state mid-run."""
    import threading

    from tests.destinations.receiver import Receiver, Reply

    gate = threading.Event()
    arrived = threading.Event()  # a request reached the receiver (it records it only once answered)

    def held(_r: object) -> Reply:
        arrived.set()
        gate.wait(60)  # the run stays mid-delivery until the readers have seen it running
        return Reply()

    duck_project.sql("create table people as select 'u' || g as id, g as n from range(20000) t(g)")
    with Receiver(held) as receiver:
        duck_project.write(TRAIT, destinations=f"  out: {{type: segment, write_key: k, endpoint: '{receiver.url}', max_batch_calls: 500}}\n")
        process = subprocess.Popen(
            [sys.executable, "-m", "traits.cli.main", "--config", str(duck_project.root), "run", "t"],
            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        )
        seen_running = False
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            result = duck_project.cli("history", "--json")
            assert result.exit_code == 0, result.stderr
            runs = json.loads(result.stdout)["runs"]
            seen_running = seen_running or any(r["status"] == "running" for r in runs)
            status = json.loads(duck_project.cli("status", "--json").stdout)["traits"][0]
            if status["health"] == "running":
                assert "pid" in status["running_by"]
            if seen_running and arrived.is_set():
                gate.set()  # seen mid-run, with calls in flight: let it finish while reading on
        gate.set()
        assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    assert seen_running
    assert json.loads(duck_project.cli("history", "--json").stdout)["runs"][0]["sent"] == 20000


def test_a_trait_held_by_another_runner_is_refused_naming_it(duck_project: Project) -> None:
    from traits.config import load_config
    from traits.state import open_state

    setup(duck_project)
    state = open_state(load_config(duck_project.root))
    with state.lock("t", "pid 4242 on daemon-host"):
        result = duck_project.cli("run", "t", "--json")
        assert result.exit_code == 1
        assert "trait t is already running (pid 4242 on daemon-host)" in result.stderr
        assert json.loads(result.stdout)["runs"][0]["status"] == "skipped"
        assert json.loads(duck_project.cli("status", "--json").stdout)["traits"][0]["running_by"] == "pid 4242 on daemon-host"
    assert duck_project.run_json("t")[0] == 0


def test_demo_makes_a_warehouse_the_demo_config_runs_on(tmp_path: Path) -> None:
    import shutil

    from click.testing import CliRunner

    from traits.cli.main import cli

    config = tmp_path / "config"
    shutil.copytree(Path(__file__).parents[2] / "config", config, ignore=shutil.ignore_patterns(".traits", "out", "*.duckdb*"))
    runner = CliRunner()
    made = runner.invoke(cli, ["--config", str(config), "demo", "--users", "200", "--json"])
    assert made.exit_code == 0, made.stderr
    assert json.loads(made.stdout)["users"] == 200
    first = runner.invoke(cli, ["--config", str(config), "run", "--all", "--json"])
    assert first.exit_code == 0, first.stderr
    assert {r["trait"] for r in json.loads(first.stdout)["runs"]} == {"zendesk_open_tickets", "product_engagement", "account_health"}
    assert runner.invoke(cli, ["--config", str(config), "demo", "--mutate"]).exit_code == 0
    second = json.loads(runner.invoke(cli, ["--config", str(config), "run", "--all", "--json"]).stdout)["runs"]
    assert 0 < sum(r["sent"] for r in second) < 20


def test_config_and_debug_are_taken_after_the_command_too(duck_project: Project, tmp_path: Path) -> None:
    setup(duck_project)
    from click.testing import CliRunner

    from traits.cli.main import cli

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in (["run", "--all", "--config", str(duck_project.root), "--json"], ["--config", str(elsewhere), "run", "t", "--config", str(duck_project.root), "--json"]):
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert len(duck_project.calls()) == 30
    for command in (["history"], ["status"], ["validate"], ["preview", "t"], ["reset", "t"]):
        result = CliRunner().invoke(cli, [*command, "--config", str(duck_project.root), "--debug", "--json"], catch_exceptions=False)
        assert result.exit_code == 0, (command, result.output)
        json.loads(result.stdout)


def test_exit_codes_are_documented_in_help() -> None:
    from click.testing import CliRunner

    from traits.cli.main import cli

    text = CliRunner().invoke(cli, ["--help"]).output
    for code in ("0  ok", "1  the result", "2  config", "3  warehouse", "4  delivery", "5  state store"):
        assert code in text
