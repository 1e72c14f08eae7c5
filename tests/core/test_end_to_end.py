"""The core promise, on DuckDB and on the real Postgres (both drivers): only changes are sent."""

from __future__ import annotations

import pytest

from tests.conftest import Project

TRAIT = """  scores:
    kind: user
    source: wh
    sql: select id as user_id, n, score, active from people
    destinations: [out]
{extra}"""


def setup(project: Project, rows: int = 50, extra: str = "") -> None:
    project.sql("create table people (id varchar, n integer, score double precision, active boolean)")
    project.sql(
        f"insert into people select 'u' || g, g % 7, g * 1.5, g % 2 = 0 from generate_series(1, {rows}) as t(g)"
    )
    project.write(TRAIT.format(extra=extra))


def test_second_run_sends_nothing_and_one_change_sends_one_row(project: Project) -> None:
    setup(project)
    code, first = project.run_json("--all")
    assert code == 0, first
    assert first["runs"][0]["sent"] == 50
    assert first["runs"][0]["added"] == 50
    code, second = project.run_json("--all")
    assert code == 0
    assert second["runs"][0]["sent"] == 0
    assert second["runs"][0]["unchanged"] == 50
    project.sql("update people set n = 100 where id = 'u7'")
    code, third = project.run_json("scores")
    assert code == 0
    assert third["runs"][0]["changed"] == 1
    assert third["runs"][0]["sent"] == 1
    last = project.calls()[-1]
    assert last["userId"] == "u7"
    assert last["traits"] == {"active": False, "n": 100, "score": 10.5}
    assert last["context"]["traits_engine"]["change"] == "changed"
    assert len(project.calls()) == 51


def test_deleted_row_sends_nulls_for_every_trait(project: Project) -> None:
    setup(project)
    assert project.run_json("--all")[0] == 0
    project.sql("delete from people where id = 'u3'")
    code, out = project.run_json("scores")
    assert code == 0
    assert out["runs"][0]["exited"] == 1
    last = project.calls()[-1]
    assert last["userId"] == "u3"
    assert last["traits"] == {"active": None, "n": None, "score": None}
    assert "u3" not in project.final()
    # the exit is in the snapshot now: nothing more to send
    assert project.run_json("scores")[1]["runs"][0]["sent"] == 0


def test_on_exit_keep_sends_nothing_for_exits(project: Project) -> None:
    setup(project, extra="    on_exit: keep\n")
    assert project.run_json("--all")[0] == 0
    project.sql("delete from people where id = 'u3'")
    code, out = project.run_json("scores")
    assert code == 0
    assert out["runs"][0]["exited"] == 1
    assert out["runs"][0]["sent"] == 0
    assert len(project.calls()) == 50
    # the id left the snapshot: a later run does not count it again
    assert project.run_json("scores")[1]["runs"][0]["exited"] == 0


def test_send_changed_sends_only_changed_traits(project: Project) -> None:
    setup(project, extra="    send: changed\n")
    assert project.run_json("--all")[0] == 0
    project.sql("update people set score = 99.5 where id = 'u4'")
    assert project.run_json("scores")[0] == 0
    assert project.calls()[-1]["traits"] == {"score": 99.5}


def test_type_change_counts_as_change_but_same_value_does_not(project: Project) -> None:
    """Values compare by value and type: '5' (text) differs from 5 (number)."""
    setup(project)
    assert project.run_json("--all")[0] == 0
    project.write(TRAIT.format(extra="").replace("select id as user_id, n, score", "select id as user_id, cast(n as varchar) as n, score"))
    code, out = project.run_json("scores")
    assert code == 0
    assert out["runs"][0]["changed"] == 50
    assert project.calls()[-1]["traits"]["n"] in [str(i) for i in range(7)]
    # the SQL selects the columns in another order: same values, nothing to send
    project.write(TRAIT.format(extra="").replace("select id as user_id, n, score, active", "select active, score, cast(n as varchar) as n, id as user_id"))
    assert project.run_json("scores")[1]["runs"][0]["sent"] == 0


def test_guard_stops_mass_exit_and_force_overrides(project: Project) -> None:
    setup(project)
    assert project.run_json("--all")[0] == 0
    before = project.state_files()
    project.sql("delete from people where id <> 'u1'")
    code, out = project.run_json("scores")
    assert code == 1
    assert out["runs"][0]["status"] == "guarded"
    assert "max_exit_ratio" in out["runs"][0]["error"]
    assert len(project.calls()) == 50
    assert project.state_files() == before
    code, out = project.run_json("scores", "--force")
    assert code == 0
    assert out["runs"][0]["sent"] == 49
    assert set(project.final()) == {"u1"}


def test_change_guard_when_set(project: Project) -> None:
    setup(project, extra="    max_change_ratio: 0.1\n")
    assert project.run_json("--all")[0] == 0
    project.sql("update people set n = n + 1")
    code, out = project.run_json("scores")
    assert code == 1
    assert out["runs"][0]["status"] == "guarded"
    assert "max_change_ratio" in out["runs"][0]["error"]


def test_full_resync_sends_every_row(project: Project) -> None:
    setup(project)
    assert project.run_json("--all")[0] == 0
    code, out = project.run_json("scores", "--full-resync")
    assert code == 0
    assert out["runs"][0]["sent"] == 50
    assert len(project.calls()) == 100


def test_dry_run_shows_calls_and_sends_nothing(project: Project) -> None:
    setup(project)
    code, out = project.run_json("scores", "--dry-run", "--limit", "3")
    assert code == 0
    assert out["runs"][0]["added"] == 50
    assert len(out["runs"][0]["calls"]["out"]) == 3
    assert out["runs"][0]["calls"]["out"][0]["type"] == "identify"
    assert project.calls() == []
    assert project.state_files() == {}
    assert project.cli("history", "--json").stdout.count('"run_id"') == 0


def test_account_trait_sends_group_calls_with_user_id_or_anonymous_id(project: Project) -> None:
    project.sql("create table accounts (id varchar, owner varchar, seats integer)")
    project.sql("insert into accounts values ('a1', 'u1', 3), ('a2', null, 5)")
    project.write("""  acct:
    kind: account
    source: wh
    sql: select id as group_id, owner as user_id, seats from accounts
    destinations: [out]
""")
    code, out = project.run_json("acct")
    assert code == 0, out
    calls = {c["groupId"]: c for c in project.calls()}
    assert calls["a1"]["type"] == "group"
    assert calls["a1"]["userId"] == "u1"
    assert calls["a1"]["traits"] == {"seats": 3}
    assert "userId" not in calls["a2"]
    assert calls["a2"]["anonymousId"] == "group:a2"


def test_message_ids_are_deterministic_per_destination_trait_id_and_run(project: Project) -> None:
    from traits.pipeline.payloads import message_id

    setup(project, rows=3)
    assert project.run_json("--all")[0] == 0
    call = project.calls()[0]
    run_id = call["context"]["traits_engine"]["run_id"]
    assert call["messageId"] == message_id("out", "scores", "identify", call["userId"], run_id)
    assert len(call["messageId"]) < 100


@pytest.mark.parametrize("rows", [0])
def test_empty_first_result_is_valid_and_sends_nothing(project: Project, rows: int) -> None:
    setup(project, rows=rows)
    code, out = project.run_json("scores")
    assert code == 0
    assert out["runs"][0]["rows"] == 0
    assert project.calls() == []


def test_rows_hashed_by_another_engine_version_are_rehashed_not_resent(duck_project: Project) -> None:
    """After a DuckDB upgrade changes its hash function, snapshot rows are rehashed from their values."""
    import duckdb

    project = duck_project
    project.sql("create table people (id varchar, n integer, score double precision, active boolean, seen timestamp, d decimal(10, 2))")
    project.sql("insert into people select 'u' || g, g % 7, g * 1.5, g % 2 = 0, timestamp '2026-01-01 10:00:00.123' + to_days(g), g / 3 from range(40) t(g)")
    project.write(TRAIT.format(extra="").replace("select id as user_id, n, score, active from people", "select id as user_id, n, score, active, seen, d from people"))
    assert project.run_json("--all")[0] == 0
    snapshots = list((project.root / ".traits" / "snapshots").rglob("*.parquet"))
    assert snapshots
    con = duckdb.connect()
    for file in snapshots:  # as if another engine version had written them
        con.execute(f"copy (select * replace (hash_canary + 1 as hash_canary, row_hash + 7 as row_hash) from read_parquet('{file}')) to '{file}.x' (format parquet)")
        file.with_name(file.name + ".x").replace(file)
    code, out = project.run_json("scores")
    assert code == 0
    assert out["runs"][0]["sent"] == 0
    assert out["runs"][0]["unchanged"] == 40
    project.sql("update people set seen = seen + interval 1 second where id = 'u3'")
    assert project.run_json("scores")[1]["runs"][0]["changed"] == 1


def test_a_torn_last_line_from_a_killed_write_is_cut_before_appending(duck_project: Project) -> None:
    setup(duck_project, rows=5)
    assert duck_project.run_json("--all")[0] == 0
    whole = duck_project.calls_path.read_bytes()
    duck_project.calls_path.write_bytes(whole + b'{"type":"identify","userId":"u9","tra')  # killed mid-write
    duck_project.sql("update people set n = 42 where id = 'u2'")
    assert duck_project.run_json("scores")[0] == 0
    calls = duck_project.calls()  # every line parses
    assert len(calls) == 6
    assert duck_project.calls_path.read_bytes().startswith(whole)
    assert calls[-1]["userId"] == "u2"
