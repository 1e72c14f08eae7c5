"""dbt models in the config, against hand-written manifests: relations, quoting, errors, --if-changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from tests.conftest import Project
from traits.config import load_config
from traits.config.dbt import Relation, quoted_relation
from traits.config.models import SourceConfig
from traits.errors import ConfigError


def manifest(alias: str = "customer_traits", schema: str = "main", database: str = "wh") -> dict[str, Any]:
    node = {"resource_type": "model", "name": "customer_traits", "package_name": "analytics", "unique_id": "model.analytics.customer_traits",
            "database": database, "schema": schema, "alias": alias}
    return {"metadata": {"dbt_version": "1.11.0"}, "nodes": {node["unique_id"]: node}}


def write_manifest(root: Path, data: dict[str, Any]) -> Path:
    target = root / "analytics" / "target"
    target.mkdir(parents=True, exist_ok=True)
    (target / "manifest.json").write_text(json.dumps(data))
    return target


def run_results(target: Path, completed_at: str, status: str = "success", unique_id: str = "model.analytics.customer_traits") -> None:
    result = {"unique_id": unique_id, "status": status, "timing": [{"name": "execute", "completed_at": completed_at}]}
    (target / "run_results.json").write_text(json.dumps({"metadata": {}, "args": {"target": "prod"}, "results": [result]}))


TRAIT = "  people: {kind: user, source: wh, model: customer_traits, destinations: [out], tags: [after_dbt]}\n"
DBT = "settings:\n  dbt: {project_dir: analytics, target: prod}\n"


@pytest.mark.parametrize(("source", "expected"), [
    ({"type": "postgres", "dsn": "postgresql://x@h/db"}, '"marts"."customer traits"'),
    ({"type": "duckdb", "path": "x.duckdb"}, '"marts"."customer traits"'),
    ({"type": "sqlalchemy", "url": "mysql+pymysql://u:p@h/db"}, "`marts`.`customer traits`"),
    ({"type": "sqlalchemy", "url": "mssql+pymssql://u:p@h/db"}, "[analytics].[marts].[customer traits]"),
    ({"type": "sqlalchemy", "url": "trino://u@h:8080/hive"}, '"analytics"."marts"."customer traits"'),
    ({"type": "bigquery", "project": "p"}, "`analytics.marts.customer traits`"),
])
def test_relation_is_quoted_for_the_source(source: dict[str, Any], expected: str) -> None:
    model = TypeAdapter(SourceConfig).validate_python(source)
    assert quoted_relation(Relation("model.a.b", "analytics", "marts", "customer traits"), model) == expected


def test_a_model_trait_reads_the_manifest_relation(duck_project: Project) -> None:
    duck_project.sql("create schema marts; create table marts.renamed as select 'u1' as user_id, 5 as n")
    write_manifest(duck_project.root, manifest(alias="renamed", schema="marts"))
    duck_project.write(TRAIT, extra=DBT)
    config = load_config(duck_project.root)
    assert config.trait_sql("people") == 'select * from "marts"."renamed"'
    code, out = duck_project.run_json("--select", "tag:after_dbt")
    assert code == 0, out
    assert duck_project.final() == {"u1": {"n": 5}}


def test_a_missing_model_names_the_trait_line_and_the_manifest(duck_project: Project) -> None:
    write_manifest(duck_project.root, manifest())
    duck_project.write(TRAIT.replace("model: customer_traits", "model: no_such_model"), extra=DBT)
    with pytest.raises(ConfigError) as info:
        load_config(duck_project.root)
    message = str(info.value)
    traits_yml = duck_project.root / "traits.yml"
    line = next(i for i, text in enumerate(traits_yml.read_text().splitlines(), 1) if "no_such_model" in text)
    assert f"{traits_yml}:{line}:" in message
    assert "no_such_model" in message
    assert str(duck_project.root / "analytics" / "target" / "manifest.json") in message
    assert info.value.exit_code == 2


def test_a_missing_manifest_names_the_model_and_the_path(duck_project: Project) -> None:
    duck_project.write(TRAIT, extra=DBT)
    result = duck_project.cli("validate")
    assert result.exit_code == 2
    assert "customer_traits" in result.stderr
    assert "manifest.json does not exist" in result.stderr


def test_model_without_settings_dbt_is_a_config_error(duck_project: Project) -> None:
    duck_project.write(TRAIT)
    with pytest.raises(ConfigError, match=r"needs settings\.dbt"):
        load_config(duck_project.root)


def test_sql_and_model_together_are_refused(duck_project: Project) -> None:
    write_manifest(duck_project.root, manifest())
    duck_project.write(TRAIT.replace("model: customer_traits", "model: customer_traits, sql: select 1"), extra=DBT)
    with pytest.raises(ConfigError, match="exactly one of sql, sql_file or model"):
        load_config(duck_project.root)


def test_if_changed_runs_once_per_model_build(duck_project: Project) -> None:
    duck_project.sql("create table main.customer_traits as select 'u1' as user_id, 5 as n")
    target = write_manifest(duck_project.root, manifest())
    duck_project.write(TRAIT + "  plain: {kind: user, source: wh, sql: 'select ''u1'' as user_id, 1 as m', destinations: [out]}\n", extra=DBT)
    run_results(target, "2026-12-01T08:00:00.000000Z")
    code, out = duck_project.run_json("--all", "--if-changed")
    assert code == 0, out
    assert [r["status"] for r in out["runs"]] == ["ok", "ok"]
    code, out = duck_project.run_json("--all", "--if-changed")
    assert code == 0
    skipped, plain = out["runs"]
    assert (skipped["trait"], skipped["status"]) == ("people", "skipped")
    assert "was not rebuilt since this trait's last run" in skipped["reason"]
    assert (plain["trait"], plain["status"]) == ("plain", "ok"), "a trait on SQL always runs"
    text = duck_project.cli("run", "people", "--if-changed")
    assert text.exit_code == 0
    assert "skipped: model customer_traits was not rebuilt" in text.stdout
    run_results(target, "2026-12-01T09:00:00.000000Z")  # dbt rebuilt it
    code, out = duck_project.run_json("people", "--if-changed")
    assert out["runs"][0]["status"] == "ok"
    run_results(target, "2026-12-01T09:30:00.000000Z")  # rebuilt again; a plain run reads it and remembers it
    assert duck_project.run_json("people")[1]["runs"][0]["status"] == "ok"
    assert duck_project.run_json("people", "--if-changed")[1]["runs"][0]["status"] == "skipped"
    run_results(target, "2026-12-01T10:00:00.000000Z", status="error")
    code, out = duck_project.run_json("people", "--if-changed")
    assert out["runs"][0]["status"] == "skipped"
    assert "status 'error'" in out["runs"][0]["reason"]


def test_a_versioned_model_reads_its_latest_version_or_the_one_named(duck_project: Project) -> None:
    nodes = {}
    for version in (1, 2):
        node = {"resource_type": "model", "name": "customer_traits", "package_name": "analytics", "version": version, "latest_version": 2,
                "unique_id": f"model.analytics.customer_traits.v{version}", "database": "wh", "schema": "main", "alias": f"customer_traits_v{version}"}
        nodes[node["unique_id"]] = node
    write_manifest(duck_project.root, {"nodes": nodes})
    duck_project.write(TRAIT + TRAIT.replace("people:", "pinned:").replace("model: customer_traits", "model: customer_traits.v1"), extra=DBT)
    config = load_config(duck_project.root)
    assert config.trait_sql("people") == 'select * from "main"."customer_traits_v2"'
    assert config.trait_sql("pinned") == 'select * from "main"."customer_traits_v1"'
