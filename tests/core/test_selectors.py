"""Selectors follow dbt's semantics: space (or a repeated --select) is a union, comma an intersection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Project
from traits.config import load_config
from traits.config.selectors import select
from traits.errors import ConfigError

CONFIG = """sources:
  wh: {type: duckdb, path: wh.duckdb}
  lake: {type: duckdb, path: lake.duckdb}
destinations:
  seg: {type: file, path: out/seg.jsonl}
  hook: {type: file, path: out/hook.jsonl}
traits:
  zendesk_tickets: {kind: user, source: wh, sql: 'select 1 as user_id, 1 as n', tags: [nightly, support], destinations: [seg]}
  zendesk_csat: {kind: user, source: lake, sql: 'select 1 as user_id, 1 as n', tags: [nightly], destinations: [hook]}
  billing_mrr: {kind: account, source: wh, sql: 'select 1 as group_id, 1 as n', tags: [after_dbt], destinations: [seg, hook]}
  old_thing: {kind: user, source: wh, sql: 'select 1 as user_id, 1 as n', tags: [nightly], enabled: false}
"""


@pytest.fixture
def config(tmp_path: Path) -> object:
    (tmp_path / "traits.yml").write_text(CONFIG)
    return load_config(tmp_path)


@pytest.mark.parametrize(("selectors", "exclude", "expected"), [
    (["tag:nightly"], [], ["zendesk_tickets", "zendesk_csat"]),           # a disabled trait is not selected by a method
    (["tag:nightly,source:wh"], [], ["zendesk_tickets"]),                # comma: both (dbt's intersection)
    (["tag:nightly source:wh"], [], ["zendesk_tickets", "zendesk_csat", "billing_mrr"]),  # space: either
    (["tag:nightly", "tag:after_dbt"], [], ["zendesk_tickets", "zendesk_csat", "billing_mrr"]),  # repeated: union
    (["zendesk_*"], [], ["zendesk_tickets", "zendesk_csat"]),
    (["zendesk_*"], ["tag:support"], ["zendesk_csat"]),
    (["destination:hook"], [], ["zendesk_csat", "billing_mrr"]),
    (["destination:seg,tag:after_*"], [], ["billing_mrr"]),
    (["old_thing"], [], ["old_thing"]),                                  # an exact name selects a disabled trait
    ([], ["source:lake"], ["zendesk_tickets", "billing_mrr"]),           # nothing selected: every enabled trait
])
def test_selection(config: object, selectors: list[str], exclude: list[str], expected: list[str]) -> None:
    assert select(config, selectors, exclude) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("selector", "message"), [
    ("tag:nope", "no trait matches"),
    ("nope", "unknown trait 'nope'"),
    ("colour:red", "unknown selector method 'colour'"),
    ("+zendesk_csat", "graph operators"),
])
def test_bad_selectors_are_usage_errors(config: object, selector: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        select(config, [selector])  # type: ignore[arg-type]
    assert info.value.exit_code == 2


def test_run_select_runs_exactly_the_selected(duck_project: Project) -> None:
    duck_project.sql("create table people as select 'u' || range as id, range as n from range(3)")
    duck_project.write(
        "  a: {kind: user, source: wh, sql: 'select id as user_id, n from people', tags: [after_dbt], destinations: [out]}\n"
        "  b: {kind: user, source: wh, sql: 'select id as user_id, n + 1 as m from people', tags: [nightly], destinations: [out]}\n"
        "  c: {kind: user, source: wh, sql: 'select id as user_id, n + 2 as k from people', tags: [after_dbt, nightly], destinations: [out]}\n"
    )
    code, out = duck_project.run_json("--select", "tag:after_dbt", "--exclude", "tag:nightly")
    assert code == 0, out
    assert [r["trait"] for r in out["runs"]] == ["a"]
    code, out = duck_project.run_json("--select", "tag:after_dbt,tag:nightly")
    assert [r["trait"] for r in out["runs"]] == ["c"]
    result = duck_project.cli("run", "--select", "tag:typo")
    assert result.exit_code == 2
    assert "no trait matches" in result.stderr


def test_ls_lists_source_reads_tags_destinations_schedule(duck_project: Project) -> None:
    duck_project.write(
        "  a: {kind: user, source: wh, sql: 'select 1 as user_id, 2 as n', tags: [after_dbt], destinations: [out], schedule: every 6h}\n"
        "  b: {kind: account, source: wh, sql: 'select 1 as group_id, 2 as n', tags: [nightly]}\n"
    )
    result = duck_project.cli("ls", "--select", "tag:after_dbt", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["traits"]
    assert rows == [{"trait": "a", "kind": "user", "source": "wh", "source_type": "duckdb", "diff": duck_project.diff, "model": None, "sql_file": None,
                     "reads": "sql", "tags": ["after_dbt"], "destinations": ["out"], "schedule": "every 6h", "enabled": True}]
    text = duck_project.cli("ls").stdout.splitlines()
    assert [line.split()[0] for line in text[2:]] == ["a", "b"], text
    assert "after_dbt" in text[2]
    assert "nightly" in text[3]
