"""Trait keys and known ids end to end through the CLI: Postgres warehouse, a local receiver."""

from __future__ import annotations

import json

from tests.semantics.conftest import SemanticsProject

TWO_TRAITS = """  billing:
    kind: user
    source: wh
    sql: select id as user_id, plan, mrr from people
    destinations: [seg]
  crm:
    kind: user
    source: wh
    sql: select id as user_id, plan, owner from people
    destinations: [seg]
"""


def _people(project: SemanticsProject) -> None:
    project.sql("create table people as select 'u' || g as id, 'pro' as plan, g * 10 as mrr, 'ann' as owner, "
                "'u' || g || '@example.com' as email from generate_series(1, 20) g")


def test_two_traits_writing_one_key_are_a_config_error_at_validate(semantics: SemanticsProject) -> None:
    p = semantics
    _people(p)
    p.configure(TWO_TRAITS)
    assert p.cli("validate").exit_code == 0  # no run yet: the keys are not known
    code, _ = p.run_json("billing")
    assert code == 0
    mark = p.mark()
    # the second trait's first run finds the shared key before sending anything
    code, out = p.run_json("crm")
    assert code == 1
    assert out["runs"][0]["status"] == "invalid"
    error = out["runs"][0]["error"]
    assert "billing" in error
    assert "crm" in error
    assert "'plan'" in error
    assert p.calls_since(mark) == []
    # and validate, which runs no SQL, names both traits and the key from then on
    result = p.cli("validate")
    assert result.exit_code == 2
    assert "traits billing and crm both write the key 'plan' to seg" in result.stderr
    assert "allow_shared_keys" in result.stderr
    p.configure(TWO_TRAITS + "    allow_shared_keys: true\n")
    assert p.cli("validate").exit_code == 0
    code, _ = p.run_json("crm")
    assert code == 0


def test_a_reserved_key_is_a_warning_naming_it(semantics: SemanticsProject) -> None:
    p = semantics
    _people(p)
    p.configure("""  contact:
    kind: user
    source: wh
    sql: select id as user_id, email, owner as name from people
    destinations: [seg]
""")
    code, _ = p.run_json("contact")
    assert code == 0
    data = json.loads(p.cli("validate", "--json").stdout)
    assert data["ok"]
    warnings = " ".join(data["warnings"])
    assert "'email' is an identifier" in warnings
    assert "'name' is a reserved trait of Segment's Identify spec" in warnings
    preview = p.cli("preview", "contact")
    assert "'email' is an identifier" in preview.stdout


ID_TRAIT = """  t:
    kind: user
    source: wh
    sql: select {column} as user_id, plan from people
    destinations: [seg]
    min_known_ratio: 0.5
"""


def test_a_wrong_id_column_is_stopped_by_min_known_ratio(semantics: SemanticsProject) -> None:
    p = semantics
    _people(p)
    p.sql("create table users as select 'u' || g as id from generate_series(1, 100) g")
    identity = "    identity: {table: users, column: id}\n"
    p.configure(ID_TRAIT.format(column="email") + identity)
    code, out = p.run_json("t")
    assert code == 1
    run = out["runs"][0]
    assert run["status"] == "guarded"
    assert "0% of the result's ids (0 of 20 ids) are known in the identity table users.id" in run["error"]
    assert "min_known_ratio = 50%" in run["error"]
    assert "'u10@example.com'" in run["error"]
    assert p.receiver.accepted_calls() == []
    # the right column passes, and --force sends a run the guard would stop
    p.configure(ID_TRAIT.format(column="id") + identity)
    code, out = p.run_json("t")
    assert code == 0
    assert out["runs"][0]["sent"] == 20


def test_without_identity_the_guard_compares_with_the_synced_ids(semantics: SemanticsProject) -> None:
    p = semantics
    _people(p)
    p.configure(ID_TRAIT.format(column="id") + "    max_exit_ratio: 1\n")
    code, _ = p.run_json("t")  # a first sync is exempt
    assert code == 0
    p.configure(ID_TRAIT.format(column="email") + "    max_exit_ratio: 1\n")
    mark = p.mark()
    code, out = p.run_json("t")
    assert code == 1
    assert out["runs"][0]["status"] == "guarded"
    assert "known in the ids already synced to seg" in out["runs"][0]["error"]
    assert p.calls_since(mark) == []
    code, out = p.run_json("t", "--force")
    assert code == 0
