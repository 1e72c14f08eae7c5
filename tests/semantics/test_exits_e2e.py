"""Exits end to end through the CLI: Postgres warehouse, a local receiver, both state stores."""

from __future__ import annotations

import json

from tests.semantics.conftest import SemanticsProject

FLAPPING = """  t:
    kind: user
    source: wh
    sql: select id as user_id, plan, score from people
    destinations: [seg]
    max_exit_ratio: 1
    exit_after: 2
"""


def _people(project: SemanticsProject, rows: dict[str, tuple[str, int]]) -> None:
    project.sql("drop table if exists people")
    project.sql("create table people (id text, plan text, score int)")
    for key, (plan, score) in rows.items():
        project.sql(f"insert into people values ('{key}', '{plan}', {score})")


def _run(project: SemanticsProject) -> dict[str, object]:
    code, out = project.run_json("t")
    assert code == 0, out
    run: dict[str, object] = out["runs"][0]
    return run


def test_flapping_ids_over_four_runs_with_exit_after_2(semantics: SemanticsProject) -> None:
    p = semantics
    p.configure(FLAPPING)
    base = {f"u{i}": ("pro", i) for i in range(1, 7)}
    _people(p, base)
    _run(p)  # run 1: a first sync
    assert set(p.profiles()) == set(base)

    # run 2: u4, u5, u6 drop out; nothing is sent for them yet, the dry run says when they exit
    _people(p, {k: v for k, v in base.items() if k not in ("u4", "u5", "u6")})
    dry = json.loads(p.cli("run", "t", "--dry-run", "--json").stdout)["runs"][0]["destinations"]["seg"]
    assert (dry["exited"], dry["pending_exit"]) == (0, 3)
    assert [x["id"] for x in dry["pending"]] == ["u4", "u5", "u6"]
    assert dry["pending"][0]["exits"] == "if still missing 1 more run(s)"
    preview = p.cli("preview", "t")
    assert "pending exit" in preview.stdout
    assert "u4" in preview.stdout
    mark = p.mark()
    run2 = _run(p)
    assert p.calls_since(mark) == []
    assert run2["destinations"]["seg"]["pending_exit"] == 3  # type: ignore[index]

    # run 3: u4 is back unchanged, u6 is back changed, u5 is still missing: only u5 exits, u6 changes
    _people(p, {**{k: v for k, v in base.items() if k != "u5"}, "u6": ("team", 60)})
    mark = p.mark()
    run3 = _run(p)
    calls = {c["userId"]: c for c in p.calls_since(mark)}
    assert set(calls) == {"u5", "u6"}
    assert calls["u5"]["traits"] == {"plan": None, "score": None}
    assert calls["u5"]["context"]["traits_engine"]["change"] == "exited"
    assert calls["u6"]["traits"] == {"plan": "team", "score": 60}
    assert (run3["exited"], run3["changed"]) == (1, 1)

    # run 4: u4 drops out again: its count starts over, nothing is sent
    _people(p, {**{k: v for k, v in base.items() if k not in ("u4", "u5")}, "u6": ("team", 60)})
    mark = p.mark()
    run4 = _run(p)
    assert p.calls_since(mark) == []
    assert run4["destinations"]["seg"]["pending_exit"] == 1  # type: ignore[index]
    assert run4["destinations"]["seg"]["pending"][0]["missing_runs"] == 1  # type: ignore[index]
    # the receiver still holds u4's values: its snapshot values stand
    assert p.profiles()["u4"] == {"plan": "pro", "score": 4}
    assert "u5" not in p.profiles()


def test_per_column_exit_values_arrive_at_the_receiver(semantics: SemanticsProject) -> None:
    p = semantics
    p.configure(
        FLAPPING.replace("    exit_after: 2\n", "    on_exit: {default: clear, columns: {plan: keep, score: 0}}\n").replace(
            "plan, score from people", "plan, score, 'x' as note from people"
        )
        + """  acct:
    kind: account
    source: wh
    sql: select id as group_id, plan as tier, score as seats from people
    destinations: [seg]
    max_exit_ratio: 1
    on_exit: {default: keep, columns: {seats: -1}}
  kept:
    kind: account
    source: wh
    sql: select id as group_id, plan as level from people
    destinations: [seg]
    max_exit_ratio: 1
    on_exit: keep
"""
    )
    _people(p, {"u1": ("pro", 1), "u2": ("team", 2)})
    for name in ("t", "acct", "kept"):
        code, out = p.run_json(name)
        assert code == 0, out
    _people(p, {"u1": ("pro", 1)})
    mark = p.mark()
    for name in ("t", "acct", "kept"):
        code, out = p.run_json(name)
        assert code == 0, out
    calls = p.calls_since(mark)
    identify = [c for c in calls if c["type"] == "identify"]
    group = [c for c in calls if c["type"] == "group"]
    assert [(c["userId"], c["traits"]) for c in identify] == [("u2", {"note": None, "score": 0})]
    # the kept trait sends no call at all; the account trait sends only its defaulted column
    assert [(c["groupId"], c["traits"]) for c in group] == [("u2", {"seats": -1})]
    assert group[0]["anonymousId"] == "group:u2"
    # and the kept exit still leaves the snapshot: a later return is an add, sent again
    _people(p, {"u1": ("pro", 1), "u2": ("team", 2)})
    mark = p.mark()
    code, out = p.run_json("kept")
    assert code == 0
    assert out["runs"][0]["added"] == 1
    assert [c["groupId"] for c in p.calls_since(mark)] == ["u2"]


def test_the_guard_counts_exits_as_sent(semantics: SemanticsProject) -> None:
    p = semantics
    p.configure(FLAPPING.replace("    max_exit_ratio: 1\n", "    max_exit_ratio: 0.5\n"))
    _people(p, {f"u{i}": ("pro", i) for i in range(10)})
    _run(p)
    _people(p, {"u0": ("pro", 0)})  # 9 of 10 missing: pending, so the guard lets the run through
    run = _run(p)
    assert run["status"] == "ok"
    code, out = p.run_json("t")  # the second miss would exit them all: guarded
    assert code == 1
    assert out["runs"][0]["status"] == "guarded"
    assert "9 of 10" in out["runs"][0]["error"]


def test_kept_exits_are_not_sends_for_the_guard(semantics: SemanticsProject) -> None:
    p = semantics
    p.configure(FLAPPING.replace("    max_exit_ratio: 1\n", "    max_exit_ratio: 0.5\n").replace("    exit_after: 2\n", "    on_exit: keep\n"))
    _people(p, {f"u{i}": ("pro", i) for i in range(10)})
    _run(p)
    _people(p, {"u0": ("pro", 0)})
    mark = p.mark()
    run = _run(p)  # 9 of 10 exit, but keeping every column sends nothing: not guarded
    assert (run["status"], run["exited"], run["sent"]) == ("ok", 9, 0)
    assert p.calls_since(mark) == []
