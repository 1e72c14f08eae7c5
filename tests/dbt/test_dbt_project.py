"""Traits on the models of a real dbt project, built by dbt against the local Postgres."""

from __future__ import annotations

import json

from tests.conftest import Project

from .conftest import DbtProject

TRAITS = """  customer_value:
    kind: user
    source: wh
    model: customer_traits
    tags: [after_dbt]
    destinations: [out]
  other:
    kind: user
    source: wh
    model: other_model
    tags: [nightly]
    destinations: [out]
  plain_sql:
    kind: user
    source: wh
    sql: select 'u9' as user_id, 1 as n
    tags: [nightly]
"""
DBT = "settings:\n  dbt: {project_dir: ../analytics, target: prod}\n"


def test_a_trait_on_a_dbt_model_runs_and_select_tag_picks_exactly_the_tagged(dbt_project: DbtProject, traits_project: Project) -> None:
    dbt_project.run("build")
    traits_project.write(TRAITS, extra=DBT)
    listed = json.loads(traits_project.cli("ls", "--select", "tag:after_dbt", "--json").stdout)["traits"]
    assert [(t["trait"], t["model"]) for t in listed] == [("customer_value", "customer_traits")]
    code, out = traits_project.run_json("--select", "tag:after_dbt")
    assert code == 0, out
    assert [r["trait"] for r in out["runs"]] == ["customer_value"]
    assert traits_project.final() == {
        "u1": {"lifetime_value": 10, "is_vip": False}, "u2": {"lifetime_value": 20, "is_vip": True},
        "u3": {"lifetime_value": 30, "is_vip": False},
    }


def test_a_renamed_alias_is_followed(dbt_project: DbtProject, traits_project: Project) -> None:
    dbt_project.run("build", "--select", "customer_traits")
    traits_project.write(TRAITS, extra=DBT)
    assert traits_project.run_json("customer_value")[0] == 0
    # the dbt project renames the model's relation and builds it with one more customer
    dbt_project.run("build", "--select", "customer_traits", "--vars", "{customer_traits_alias: customer_values, customers: 4}")
    traits_project.sql("drop table customer_traits")  # the old relation is gone: reading it would fail
    code, out = traits_project.run_json("customer_value")
    assert code == 0, out
    assert (out["runs"][0]["added"], out["runs"][0]["sent"]) == (1, 1)
    assert traits_project.calls()[-1]["userId"] == "u4"


def test_if_changed_skips_a_model_dbt_did_not_rebuild(dbt_project: DbtProject, traits_project: Project) -> None:
    dbt_project.run("build")
    traits_project.write(TRAITS, extra=DBT)
    code, out = traits_project.run_json("--select", "tag:after_dbt", "--if-changed")
    assert (code, out["runs"][0]["status"]) == (0, "ok")
    code, out = traits_project.run_json("--select", "tag:after_dbt", "--if-changed")
    assert (code, out["runs"][0]["status"]) == (0, "skipped")
    dbt_project.run("run", "--select", "other_model")  # dbt's last invocation did not build customer_traits
    code, out = traits_project.run_json("--select", "tag:after_dbt", "--if-changed")
    assert (code, out["runs"][0]["status"]) == (0, "skipped")
    assert "did not build it" in out["runs"][0]["reason"]
    dbt_project.run("run", "--select", "customer_traits")
    code, out = traits_project.run_json("--select", "tag:after_dbt", "--if-changed")
    assert (code, out["runs"][0]["status"]) == (0, "ok")
