"""A throwaway project for end-to-end delivery tests: a DuckDB warehouse, one user trait,
HTTP destinations pointed at local receivers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb

from traits.config import load_config
from traits.errors import ExitCode
from traits.pipeline.run import RunOptions, RunResult, run_trait
from traits.state import open_state

TRAIT = "plan_traits"
Rows = dict[str, tuple[str, int, bool]]  # user_id -> (plan, score, active)

#: small timeouts and backoff so failure tests take milliseconds, not minutes
FAST = {"connect_timeout": 0.5, "timeout": 0.5, "retry_backoff": 0.01, "retry_backoff_max": 0.05}


def make_project(root: Path, destinations: dict[str, dict[str, Any]], rows: Rows, *, delivery_deadline: float = 60.0) -> Path:
    config = root / "config"
    config.mkdir(parents=True, exist_ok=True)
    document = {
        "sources": {"wh": {"type": "duckdb", "path": "wh.duckdb"}},
        "destinations": destinations,
        "traits": {
            TRAIT: {
                "kind": "user",
                "source": "wh",
                "sql": "select user_id, plan, score, active from users",
                "destinations": list(destinations),
                "schedule": "manual",
                "max_exit_ratio": 1.0,
            }
        },
        "settings": {"delivery_deadline": delivery_deadline},
    }
    (config / "traits.yml").write_text(json.dumps(document, indent=1))  # JSON is YAML
    write_rows(config, rows)
    return config


def write_rows(config: Path, rows: Rows) -> None:
    con = duckdb.connect(str(config / "wh.duckdb"))
    try:
        con.execute("create or replace table users (user_id varchar, plan varchar, score bigint, active boolean)")
        if rows:
            con.executemany("insert into users values (?, ?, ?, ?)", [(k, *v) for k, v in rows.items()])
    finally:
        con.close()


def run(config: Path) -> RunResult:
    cfg = load_config(config)
    state = open_state(cfg)
    try:
        return run_trait(cfg, state, TRAIT, RunOptions())
    finally:
        state.close()


RUN_SCRIPT = f"""
import sys
from traits.config import load_config
from traits.pipeline.run import run_trait
from traits.state import open_state
cfg = load_config(sys.argv[1])
sys.exit(int(run_trait(cfg, open_state(cfg), {TRAIT!r}).exit_code))
"""


def start_run(config: Path) -> subprocess.Popen[bytes]:
    """A run in its own process, so a test can SIGKILL it (its stderr goes to a file beside the config)."""
    with open(config.parent / "run.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-c", RUN_SCRIPT, str(config)], stdout=subprocess.DEVNULL, stderr=log)


def expected_profiles(history: list[Rows]) -> dict[str, dict[str, Any]]:
    """What a receiver should hold after the rows went through ``history``: exited users are nulled."""
    seen = {k for rows in history for k in rows}
    final = history[-1]
    out: dict[str, dict[str, Any]] = {}
    for key in seen:
        if key in final:
            plan, score, active = final[key]
            out[key] = {"plan": plan, "score": score, "active": active}
        else:
            out[key] = {"plan": None, "score": None, "active": None}
    return out


__all__ = ["FAST", "TRAIT", "ExitCode", "Rows", "expected_profiles", "make_project", "run", "start_run", "write_rows"]
