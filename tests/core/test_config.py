"""Config errors name file:line:col and exit 2; env interpolation; secrets never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from traits.cli.main import cli

GOOD = """sources:
  wh: {type: duckdb, path: wh.duckdb}
destinations:
  seg:
    type: segment
    write_key: ${env:SEG_KEY}
traits:
  t:
    kind: user
    source: wh
    sql: select 1 as user_id, 2 as n
    destinations: [seg]
"""


def invoke(config: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), *args], env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, text: str, name: str = "traits.yml") -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def test_valid_config_with_env(tmp_path: Path) -> None:
    code, out, err = invoke(write(tmp_path, GOOD), "validate", env={"SEG_KEY": "sekrit-write-key"})
    assert code == 0, err
    assert "1 trait(s)" in out
    assert "sekrit-write-key" not in out + err


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (GOOD.replace("    kind: user\n", "    kind: user\n    kindd: x\n"), ":10:5", "unknown key 'kindd'"),
        (GOOD.replace("kind: user", "kind: person"), ":9:11", "traits.t.kind"),
        (GOOD.replace("    write_key: ${env:SEG_KEY}\n", ""), ":4:3", "required key 'write_key' is missing"),
        (GOOD.replace("type: duckdb", "type: oracle"), ":2:14", "unknown type 'oracle'"),
        (GOOD.replace("source: wh", "source: nope"), ":10:13", "unknown source 'nope'"),
        (GOOD.replace("destinations: [seg]", "destinations: [seg, nope]"), ":12:25", "unknown destination 'nope'"),
        (GOOD + "  u:\n    kind: user\n    source: wh\n    destinations: []\n", ":13:3", "exactly one of sql, sql_file or model"),
        (GOOD.replace("    destinations: [seg]\n", "    destinations: [seg]\n    schedule: every 5 minutes\n"), ":13:15", "is not a duration"),
        (GOOD.replace("    destinations: [seg]\n", "    destinations: [seg]\n    schedule: '61 * * * *'\n"), ":13:15", "not a valid cron"),
        (GOOD.replace("    destinations: [seg]\n", "    destinations: [seg]\n    max_exit_ratio: 2\n"), ":13:21", "less than or equal to 1"),
        (GOOD + "settngs: {}\n", ":13:1", "unknown section 'settngs'"),
        (GOOD.replace("    sql: select 1 as user_id, 2 as n\n", "    sql_file: missing.sql\n"), ":11:15", "does not exist"),
        (GOOD.replace("  t:\n", "  t:\n  t:\n"), ":9:3", "duplicate"),
        ("sources: [1, 2\n", ":", "expected"),
    ],
    ids=["unknown key", "bad enum", "missing write_key", "unknown source type", "unknown source ref", "unknown destination ref",
         "no sql", "bad duration", "bad cron", "ratio range", "unknown section", "missing sql_file", "duplicate key", "broken yaml"],
)
def test_bad_config_is_one_line_with_location_and_exit_2(tmp_path: Path, text: str, where: str, message: str) -> None:
    config = write(tmp_path, text)
    code, out, err = invoke(config, "validate", env={"SEG_KEY": "k" * 10})
    assert code == 2, (out, err)
    line = err.strip()
    assert "\n" not in line, line
    assert f"{config / 'traits.yml'}{where}" in line, line
    assert message.lower() in line.lower(), line


def test_unset_env_names_the_variable(tmp_path: Path) -> None:
    code, _, err = invoke(write(tmp_path, GOOD), "validate", env={"SEG_KEY": None})  # type: ignore[dict-item]
    assert code == 2
    assert "environment variable SEG_KEY is not set" in err
    assert f"{tmp_path / 'traits.yml'}:6:" in err


def test_env_default(tmp_path: Path) -> None:
    config = write(tmp_path, GOOD.replace("${env:SEG_KEY}", "${env:SEG_KEY:-fallback-key}"))
    code, _, err = invoke(config, "validate", env={"SEG_KEY": None})  # type: ignore[dict-item]
    assert code == 0, err


def test_files_merge_and_names_clash_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("sources:\n  wh: {type: duckdb, path: wh.duckdb}\n")
    (tmp_path / "b.yaml").write_text("traits:\n  t: {kind: user, source: wh, sql: 'select 1 as user_id, 2 as n'}\n")
    assert invoke(tmp_path, "validate")[0] == 0
    (tmp_path / "c.yml").write_text("sources:\n  wh: {type: duckdb, path: other.duckdb}\n")
    code, _, err = invoke(tmp_path, "validate")
    assert code == 2
    assert f"{tmp_path / 'c.yml'}:2:3" in err
    assert "defined twice" in err


def test_missing_config_dir_exit_2(tmp_path: Path) -> None:
    code, _, err = invoke(tmp_path / "nope", "validate")
    assert code == 2
    assert "does not exist" in err


def test_unknown_trait_exit_2_with_json(tmp_path: Path) -> None:
    code, out, err = invoke(write(tmp_path, GOOD), "run", "nope", "--json", env={"SEG_KEY": "k" * 10})
    assert code == 2
    assert "unknown trait 'nope'" in err
    assert json.loads(out)["exit_code"] == 2


def test_run_without_names_is_usage_error(tmp_path: Path) -> None:
    code, _, _ = invoke(write(tmp_path, GOOD), "run", env={"SEG_KEY": "k" * 10})
    assert code == 2


def test_secret_never_printed_in_json(tmp_path: Path) -> None:
    code, out, _ = invoke(write(tmp_path, GOOD), "validate", "--json", env={"SEG_KEY": "super-secret-value"})
    assert code == 0
    assert "super-secret-value" not in out


def test_relative_paths_resolve_against_the_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from traits.config import load_config

    config_dir = write(tmp_path, GOOD)
    monkeypatch.chdir("/")
    config = load_config(config_dir, environ={"SEG_KEY": "k" * 10})
    assert config.resolve("wh.duckdb") == config_dir / "wh.duckdb"
