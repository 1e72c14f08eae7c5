"""The warehouse-side diff (``diff: warehouse``) sends exactly what the local diff sends, on every engine.

Each case runs two projects in lockstep over the same table: one with ``diff: local``, one with
``diff: warehouse``. After every step both run, and the test asserts their calls are the same
(type, userId, traits, per run; messageIds depend on run_id, so they are left out), their
counts and errors are the same, and, in warehouse mode, that only the changes left the warehouse
(``rows_fetched``: 0 for an unchanged re-run, the number of added, changed and exited rows
otherwise).

The engines are the conformance suite's (real drivers; Redshift, Snowflake and BigQuery on their
stand-ins). The Postgres role ``traits_reader`` gets what warehouse mode needs, as a user would
grant it: a ``sql_traits`` schema it owns, and nothing more on the data.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from traits.config import load_config
from traits.pipeline.run import RunOptions, RunResult, run_trait
from traits.state import open_state

from .engines import READER, READER_PASSWORD, Engine

WAREHOUSE_ENGINES = ["duckdb", "postgres", "redshift", "snowflake", "bigquery"]

@pytest.fixture(params=WAREHOUSE_ENGINES)
def wh_engine(request: pytest.FixtureRequest) -> Engine:
    if request.param in ("postgres", "redshift"):
        request.getfixturevalue("bookkeeping_grants")
    fixture: Engine = request.getfixturevalue(f"{request.param}_engine")
    return fixture


@dataclass
class Outcome:
    exit_code: int
    status: str
    counts: tuple[int, int, int, int, int]  # added, changed, unchanged, exited, sent
    rows_fetched: int
    error: str | None
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (type, id, traits as JSON), sorted

    def comparable(self) -> tuple[Any, ...]:
        return self.exit_code, self.status, self.counts, self.error, self.calls


class Lockstep:
    """Two projects, ``diff: local`` and ``diff: warehouse``, on one engine and one trait name."""

    def __init__(self, engine: Engine, root: Path, sql: str, **trait: Any) -> None:
        self.engine = engine
        self.name = f"t_{uuid.uuid4().hex[:8]}"
        self.roots = {mode: root / mode for mode in ("local", "warehouse")}
        self.destinations: dict[str, Any] = trait.pop("destination_configs", None) or {"out": {"type": "file", "path": "out/calls.jsonl"}}
        self.trait = {"kind": "user", "source": "wh", "destinations": list(self.destinations), "schedule": "manual", **trait}
        self.settings: dict[str, Any] = {}
        #: an HTTP receiver both modes send to (its calls are compared instead of the file's)
        self.receiver: Any = None
        self.write(sql)

    def write(self, sql: str, **trait: Any) -> None:
        self.trait.update(trait, sql=sql)
        for mode, root in self.roots.items():
            root.mkdir(parents=True, exist_ok=True)
            source = {**self.engine.source, "diff": mode}
            (root / "traits.yml").write_text(
                f"sources:\n  wh: {json.dumps(source)}\n"
                f"destinations: {json.dumps(self.destinations)}\n"
                f"traits:\n  {self.name}: {json.dumps(self.trait)}\n"
                + (f"settings: {json.dumps(self.settings)}\n" if self.settings else "")
            )

    def run(self, **options: Any) -> Outcome:
        """Run both modes; assert they did the same; return the warehouse mode's outcome."""
        local = self._run("local", options)
        warehouse = self._run("warehouse", options)
        assert warehouse.comparable() == local.comparable(), (
            f"{self.engine.name}: warehouse mode differs from local mode:\n  local     {local.comparable()}\n  warehouse {warehouse.comparable()}")
        changes = warehouse.counts[0] + warehouse.counts[1] + warehouse.counts[3]
        if warehouse.status in ("ok", "partial") and not options.get("full_resync"):
            assert warehouse.rows_fetched == changes, f"{self.engine.name}: fetched {warehouse.rows_fetched} rows for {changes} changes"
        return warehouse

    def _run(self, mode: str, options: dict[str, Any]) -> Outcome:
        root = self.roots[mode]
        config = load_config(root)
        state = open_state(config)
        out = root / "out" / "calls.jsonl"
        before = len(out.read_text().splitlines()) if out.exists() else len(self.receiver.snapshot()) if self.receiver else 0
        result: RunResult = run_trait(config, state, self.name, RunOptions(**options))
        if self.receiver is not None:
            sent = [c for r in self.receiver.snapshot()[before:] for c in r.calls]
        else:
            sent = [json.loads(line) for line in (out.read_text().splitlines()[before:] if out.exists() else [])]
        calls = sorted((c["type"], c["userId"], json.dumps(c["traits"], sort_keys=True)) for c in sent)
        r = result.record
        return Outcome(int(result.exit_code), r.status, (r.added, r.changed, r.unchanged, r.exited, r.sent), r.rows_fetched, r.error, calls)


def _traits(outcome: Outcome) -> dict[str, dict[str, Any]]:
    return {user_id: json.loads(traits) for _, user_id, traits in outcome.calls}


def _table(engine: Engine, columns: str, rows: str) -> str:
    table = f"{engine.conf}.wd_{uuid.uuid4().hex[:8]}"
    engine.admin(f"create table {table} ({columns})")
    if rows:
        engine.admin(f"insert into {table} values {rows}")
    return table


def test_first_run_rerun_change_exit_and_add(wh_engine: Engine, tmp_path: Path) -> None:
    e = wh_engine
    table = _table(e, "id varchar(20), name varchar(50), score integer",
                   "('u1', 'Ann', 1), ('u2', 'Bob', 2), ('u3', 'Cy', 3), ('u4', 'Di', 4)")
    pair = Lockstep(e, tmp_path, f"select id as user_id, name, score from {table}")

    first = pair.run()
    assert (first.exit_code, first.status, first.counts) == (0, "ok", (4, 0, 0, 0, 4)), first.error
    assert _traits(first) == {"u1": {"name": "Ann", "score": 1}, "u2": {"name": "Bob", "score": 2},
                              "u3": {"name": "Cy", "score": 3}, "u4": {"name": "Di", "score": 4}}
    assert {c[0] for c in first.calls} == {"identify"}

    again = pair.run()
    assert (again.exit_code, again.counts, again.rows_fetched) == (0, (0, 0, 4, 0, 0), 0)

    e.admin(f"update {table} set score = 20 where id = 'u2'")
    changed = pair.run()
    assert (changed.counts, changed.rows_fetched) == ((0, 1, 3, 0, 1), 1)
    assert _traits(changed) == {"u2": {"name": "Bob", "score": 20}}

    e.admin(f"delete from {table} where id = 'u3'")
    exited = pair.run()
    assert (exited.counts, exited.rows_fetched) == ((0, 0, 3, 1, 1), 1)
    assert _traits(exited) == {"u3": {"name": None, "score": None}}

    e.admin(f"insert into {table} values ('u5', 'Eve', 5)")
    added = pair.run()
    assert (added.counts, added.rows_fetched) == ((1, 0, 3, 0, 1), 1)
    assert _traits(added) == {"u5": {"name": "Eve", "score": 5}}

    assert pair.run().counts == (0, 0, 4, 0, 0)


def test_a_current_snapshot_is_advanced_not_rebuilt(wh_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose warehouse snapshot the local store vouches for folds only its acknowledged
    changes into it; the snapshot is rebuilt from the whole result (reseeded) only when it is
    not vouched for (the first run here). The local commit before the fold forgets the lineage,
    so whether the snapshot was current is asked before it."""
    from traits.bookkeeping.fold import SnapshotFold

    e = wh_engine
    folds: list[str] = []
    for name in ("_advance", "_reseed"):
        monkeypatch.setattr(SnapshotFold, name, _noting(folds, name, getattr(SnapshotFold, name)))
    table = _table(e, "id varchar(20), a integer", "('u1', 1), ('u2', 2), ('u3', 3)")
    pair = Lockstep(e, tmp_path, f"select id as user_id, a from {table}")
    assert pair.run().counts == (3, 0, 0, 0, 3)
    assert folds == ["_reseed"]
    e.admin(f"update {table} set a = 20 where id = 'u2'")
    assert pair.run().counts == (0, 1, 2, 0, 1)
    assert folds == ["_reseed", "_advance"]
    assert pair.run().counts == (0, 0, 3, 0, 0)


def _noting(folds: list[str], name: str, method: Any) -> Any:
    def noted(self: Any, *args: Any, **kwargs: Any) -> Any:
        folds.append(name)
        return method(self, *args, **kwargs)

    return noted


def test_nulls_are_values(wh_engine: Engine, tmp_path: Path) -> None:
    e = wh_engine
    table = _table(e, "id varchar(20), a varchar(20), b integer", "('u1', null, 1), ('u2', 'x', null), ('u3', null, null)")
    pair = Lockstep(e, tmp_path, f"select id as user_id, a, b from {table}")
    first = pair.run()
    assert _traits(first) == {"u1": {"a": None, "b": 1}, "u2": {"a": "x", "b": None}, "u3": {"a": None, "b": None}}
    assert pair.run().counts == (0, 0, 3, 0, 0)

    # a NULL that becomes a value, a value that becomes NULL, and an empty text (not NULL)
    e.admin(f"update {table} set a = 'y' where id = 'u1'")
    e.admin(f"update {table} set a = null where id = 'u2'")
    e.admin(f"update {table} set a = '' where id = 'u3'")
    changed = pair.run()
    assert changed.counts == (0, 3, 0, 0, 3)
    assert _traits(changed) == {"u1": {"a": "y", "b": 1}, "u2": {"a": None, "b": None}, "u3": {"a": "", "b": None}}
    assert pair.run().counts == (0, 0, 3, 0, 0)


def test_text_five_and_number_five_differ(wh_engine: Engine, tmp_path: Path) -> None:
    e = wh_engine
    table = _table(e, "id varchar(20), v varchar(20)", "('u1', '5'), ('u2', '6')")
    text, number = e.dialect.text, "bigint" if e.name != "bigquery" else "int64"
    pair = Lockstep(e, tmp_path, f"select id as user_id, cast(v as {text}) as v from {table}")
    assert _traits(pair.run()) == {"u1": {"v": "5"}, "u2": {"v": "6"}}
    pair.write(f"select id as user_id, cast(v as {number}) as v from {table}")
    as_number = pair.run()
    assert as_number.counts == (0, 2, 0, 0, 2)
    assert _traits(as_number) == {"u1": {"v": 5}, "u2": {"v": 6}}
    assert pair.run().counts == (0, 0, 2, 0, 0)
    pair.write(f"select id as user_id, cast(v as {text}) as v from {table}")
    assert _traits(pair.run()) == {"u1": {"v": "5"}, "u2": {"v": "6"}}


def test_every_mapped_type_hashes_stably(wh_engine: Engine, tmp_path: Path) -> None:
    e = wh_engine
    pair = Lockstep(e, tmp_path, e.dialect.types)
    pair.settings = {"allow_nested": True, "allow_non_finite": True}
    pair.write(e.dialect.types)
    first = pair.run()
    assert (first.exit_code, first.counts) == (0, (1, 0, 0, 0, 1)), first.error
    assert pair.run().counts == (0, 0, 1, 0, 0), "every type hashes the same on a re-run"
    # a second row, equal but for its id: the first row stays unchanged
    second = e.dialect.types.replace("'u1' as user_id", "'u2' as user_id", 1)
    pair.write(f"{e.dialect.types}\nunion all\n{second}")
    both = pair.run()
    assert (both.counts, _traits(both).keys()) == ((1, 0, 1, 0, 1), {"u2"})


def test_each_type_change_is_seen(wh_engine: Engine, tmp_path: Path) -> None:
    """One row per mapped type, each changing only that type's column: every row is seen changed."""
    e = wh_engine
    cases = _typed_values(e)

    def rows(changed: bool) -> str:
        return "\nunion all\n".join(
            "select 'u_" + name + "' as user_id, " + ", ".join(
                f"{after if changed and n == name else before} as {n}" for n, (before, after) in cases.items()
            )
            for name in cases
        )

    pair = Lockstep(e, tmp_path, rows(changed=False))
    pair.settings = {"allow_nested": True}
    pair.write(rows(changed=False))
    assert pair.run().counts == (len(cases), 0, 0, 0, len(cases))
    pair.write(rows(changed=True))
    changed = pair.run()
    assert changed.counts == (0, len(cases), 0, 0, len(cases)), f"{e.name}: a change of some type was not seen"
    assert set(_traits(changed)) == {f"u_{name}" for name in cases}
    pair.write(rows(changed=False))
    assert pair.run().counts == (0, len(cases), 0, 0, len(cases))
    pair.write(rows(changed=False))
    assert pair.run().counts == (0, 0, len(cases), 0, 0)


def _typed_values(e: Engine) -> dict[str, tuple[str, str]]:
    """Per mapped type, two values a change between must be seen: the smallest step a call shows
    (timestamps are sent to the millisecond, so a microsecond is no change in either mode)."""
    return {**_scalar_values(e), **_other_values(e)}


def _other_values(e: Engine) -> dict[str, tuple[str, str]]:
    """Times, bytes and JSON."""
    if e.name == "bigquery":
        return {"t": ("time '12:34:56'", "time '12:34:57'"), "by": ("from_hex('abcd')", "from_hex('abce')"),
                "j": ("""parse_json('{"a": 1}')""", """parse_json('{"a": 2}')""")}
    if e.name == "snowflake":
        return {"t": ("'12:34:56'::time", "'12:34:57'::time"), "by": ("to_binary('ABCD', 'HEX')", "to_binary('ABCE', 'HEX')"),
                "j": ("""parse_json('{"a": 1}')""", """parse_json('{"a": 2}')""")}
    if e.name == "duckdb":
        return {"t": ("time '12:34:56'", "time '12:34:57'"), "by": ("from_hex('ABCD')", "from_hex('ABCE')"),
                "j": ("""cast('{"a": 1}' as json)""", """cast('{"a": 2}' as json)""")}
    json = "json" if e.name == "redshift" else "jsonb"
    return {"t": ("time '12:34:56'", "time '12:34:57'"), "by": ("'\\xabcd'::bytea", "'\\xabce'::bytea"),
            "j": (f"""'{{"a": 1}}'::{json}""", f"""'{{"a": 2}}'::{json}""")}


def _scalar_values(e: Engine) -> dict[str, tuple[str, str]]:
    if e.name == "bigquery":
        return {"s": ("'ab'", "'ab '"), "i": ("5", "6"), "f": ("cast(0.1 as float64)", "cast(0.1000000000000001 as float64)"),
                "d": ("numeric '1.10'", "numeric '1.11'"), "b": ("true", "false"), "dt": ("date '2024-02-29'", "date '2024-03-01'"),
                "ts": ("timestamp '2024-01-01 12:00:00+00'", "timestamp '2024-01-01 12:00:00.001+00'"),
                "ntz": ("datetime '2024-01-01 12:00:00'", "datetime '2024-01-01 12:00:01'")}
    if e.name == "snowflake":
        return {"s": ("'ab'", "'ab '"), "i": ("5", "6"), "f": ("0.1::float", "0.1000000000000001::float"),
                "d": ("1.10::number(10, 2)", "1.11::number(10, 2)"), "b": ("true", "false"),
                "dt": ("'2024-02-29'::date", "'2024-03-01'::date"),
                "ts": ("'2024-01-01 12:00:00 +00:00'::timestamp_tz", "'2024-01-01 12:00:00.001 +00:00'::timestamp_tz"),
                "ntz": ("'2024-01-01 12:00:00'::timestamp_ntz", "'2024-01-01 12:00:01'::timestamp_ntz")}
    double = "double" if e.name == "duckdb" else "float8"
    return {"s": ("'ab'", "'ab '"), "i": ("5", "6"), "f": (f"cast(0.1 as {double})", f"cast(0.1000000000000001 as {double})"),
            "d": ("cast(1.10 as decimal(10, 2))", "cast(1.11 as decimal(10, 2))"), "b": ("true", "false"),
            "dt": ("date '2024-02-29'", "date '2024-03-01'"),
            "ts": ("timestamptz '2024-01-01 12:00:00+00'", "timestamptz '2024-01-01 12:00:00.001+00'"),
            "ntz": ("timestamp '2024-01-01 12:00:00'", "timestamp '2024-01-01 12:00:01'")}


@pytest.mark.parametrize("decimals", ["number", "string"])
def test_a_decimal_scale_change_is_judged_alike(wh_engine: Engine, tmp_path: Path, decimals: str) -> None:
    """1.50 at scale 2 becomes 1.5 at scale 1: the same number in another text. As a number
    (``decimals: number``) nothing changed; as a string the text sent changed. Warehouse mode
    judges as local mode does (the lockstep), and on every engine with a scale the outcome is
    the one named here (BigQuery's NUMERIC has one scale, 9: nothing changes there)."""
    e = wh_engine
    table = _table(e, "id varchar(20)", "('u1'), ('u2')")
    if e.name == "bigquery":
        two = one = "numeric"
    else:
        two, one = ("number(10, 2)", "number(10, 1)") if e.name == "snowflake" else ("decimal(10, 2)", "decimal(10, 1)")

    def sql(decimal: str, value: str) -> str:
        return f"select id as user_id, cast({value} as {decimal}) as d from {table}"

    pair = Lockstep(e, tmp_path, sql(two, "1.50"))
    pair.settings = {"decimals": decimals}
    pair.write(sql(two, "1.50"))
    assert pair.run().counts == (2, 0, 0, 0, 2)
    pair.write(sql(one, "1.5"))
    rescaled = pair.run()
    if decimals == "number" or e.name == "bigquery":
        assert (rescaled.counts, rescaled.rows_fetched) == ((0, 0, 2, 0, 0), 0), f"{e.name}: a scale change counted as a change"
    else:
        assert rescaled.counts == (0, 2, 0, 0, 2), f"{e.name}: the text sent changed, and the change was not seen"
        assert _traits(rescaled) == {"u1": {"d": "1.5"}, "u2": {"d": "1.5"}}
    assert pair.run().counts == (0, 0, 2, 0, 0)


def test_a_snapshot_hashed_by_another_recipe_is_rehashed_not_resent(postgres_engine: Engine, bookkeeping_grants: str,
                                                                    tmp_path: Path) -> None:
    """A snapshot whose recorded algorithm is not this release's (an upgrade that changed how rows
    are hashed) is reseeded: the result is fetched once and diffed against what was sent, so
    nothing is sent again; the run after it fetches nothing. Its hashes are made unlike this
    release's, as a real change of recipe would leave them: trusting them would send every row."""
    import psycopg

    from traits.bookkeeping.tables import ROW_HASH

    e = postgres_engine
    table = _table(e, "id varchar(20), d decimal(10, 2), s varchar(10)", "('u1', 1.50, 'a'), ('u2', 2.25, 'b'), ('u3', 3.00, 'c')")
    pair = Lockstep(e, tmp_path, f"select id as user_id, d, s from {table}")
    assert pair.run().counts == (3, 0, 0, 0, 3)
    with psycopg.connect(bookkeeping_grants, autocommit=True) as conn:
        row = conn.execute("select snapshot_table from sql_traits.snapshots where trait = %s", (pair.name,)).fetchone()
        assert row is not None
        conn.execute(f'update sql_traits."{row[0]}" set {ROW_HASH} = {ROW_HASH} + 1')  # type: ignore[arg-type]
        conn.execute("update sql_traits.snapshots set algorithm = 'postgres-hash_record-v0' where trait = %s", (pair.name,))
    upgraded = pair._run("warehouse", {})
    assert (upgraded.status, upgraded.counts, upgraded.calls) == ("ok", (0, 0, 3, 0, 0), [])
    assert upgraded.rows_fetched == 3  # the one full read of a reseed
    again = pair._run("warehouse", {})
    assert (again.counts, again.rows_fetched) == ((0, 0, 3, 0, 0), 0)
    e.admin(f"update {table} set s = 'z' where id = 'u2'")
    changed = pair.run()
    assert (changed.counts, _traits(changed)) == ((0, 1, 2, 0, 1), {"u2": {"d": 2.25, "s": "z"}})


def test_json_key_order_is_judged_alike(wh_engine: Engine, tmp_path: Path) -> None:
    """The same object with its keys in another order: whatever local mode makes of it (a change
    where the engine keeps the text's order, none where it normalises, as jsonb does), warehouse
    mode makes the same, and the new form is stable."""
    e = wh_engine
    first, second = _other_values(e)["j"][0], _other_values(e)["j"][0]
    first = first.replace('{"a": 1}', '{"a": 1, "b": [1, 2]}').replace('{{"a": 1}}', '{{"a": 1, "b": [1, 2]}}')
    second = second.replace('{"a": 1}', '{"b": [1, 2], "a": 1}').replace('{{"a": 1}}', '{{"b": [1, 2], "a": 1}}')
    pair = Lockstep(e, tmp_path, f"select 'u1' as user_id, {first} as j")
    pair.settings = {"allow_nested": True}
    pair.write(f"select 'u1' as user_id, {first} as j")
    assert _traits(pair.run()) == {"u1": {"j": {"a": 1, "b": [1, 2]}}}
    pair.write(f"select 'u1' as user_id, {second} as j")
    assert pair.run().counts in ((0, 0, 1, 0, 0), (0, 1, 0, 0, 1))
    assert pair.run().counts == (0, 0, 1, 0, 0)


def test_unacknowledged_calls_are_sent_again(wh_engine: Engine, tmp_path: Path) -> None:
    """A call the destination refuses keeps the old snapshot (a NULL hash in the warehouse), so the
    next run sends it again, in both modes; the fold of a few refusals among many acks uploads the
    refused ids (the ``unsent`` path), of many refusals the acknowledged ones."""
    from tests.destinations.delivery_project import FAST
    from tests.destinations.receiver import Received, Receiver, Reply

    e = wh_engine
    refused: set[str] = {"u2"}

    def script(r: Received) -> Reply:
        return Reply(400, b'{"message":"bad trait"}') if any(c["userId"] in refused for c in r.calls) else Reply()

    table = _table(e, "id varchar(20), a integer", "('u1', 1), ('u2', 2), ('u3', 3), ('u4', 4)")
    with Receiver(script) as receiver:
        seg = {"type": "segment", "write_key": "k", "endpoint": receiver.url, "max_batch_calls": 1, **FAST}
        pair = Lockstep(e, tmp_path, f"select id as user_id, a from {table}", destination_configs={"seg": seg})
        pair.receiver = receiver
        first = pair.run()
        assert (first.exit_code, first.status, {c[1] for c in first.calls}) == (4, "partial", {"u1", "u2", "u3", "u4"})
        again = pair.run()
        assert (again.status, [c[1] for c in again.calls]) == ("failed", ["u2"])  # (every call it sent failed)
        refused.clear()
        accepted = pair.run()
        assert (accepted.status, [c[1] for c in accepted.calls]) == ("ok", ["u2"])
        assert pair.run().calls == []

        refused.add("u4")  # one refusal among three changes
        e.admin(f"update {table} set a = a + 10")
        partial = pair.run()
        assert (partial.status, len(partial.calls)) == ("partial", 4)
        refused.update({"u1", "u2"})  # three refusals (u4 still among them), one ack
        e.admin(f"update {table} set a = a + 10 where id <> 'u4'")
        mostly = pair.run()
        assert (mostly.status, {c[1] for c in mostly.calls}) == ("partial", {"u1", "u2", "u3", "u4"})
        refused.clear()
        healed = pair.run()
        assert (healed.status, {c[1] for c in healed.calls}) == ("ok", {"u1", "u2", "u4"})  # (u3 was acknowledged)
        assert pair.run().calls == []


def test_trait_sql_with_placeholders_in_its_text_runs_as_written(wh_engine: Engine, tmp_path: Path) -> None:
    """The trait's SQL goes into bookkeeping statements unparameterised: a ``%s`` or ``?`` in it stays."""
    e = wh_engine
    table = _table(e, "id varchar(20), a varchar(20)", "('u1', '100%s ?'), ('u2', 'x')")
    pair = Lockstep(e, tmp_path, f"select id as user_id, a, '%s?' as b from {table} where a like '%s%' or a = 'x'")
    assert _traits(pair.run()) == {"u1": {"a": "100%s ?", "b": "%s?"}, "u2": {"a": "x", "b": "%s?"}}
    assert pair.run().counts == (0, 0, 2, 0, 0)


def test_send_changed_sends_only_the_changed_traits(wh_engine: Engine, tmp_path: Path) -> None:
    e = wh_engine
    table = _table(e, "id varchar(20), a varchar(20), b integer", "('u1', 'x', 1), ('u2', 'y', 2)")
    pair = Lockstep(e, tmp_path, f"select id as user_id, a, b from {table}", send="changed")
    assert pair.run().counts == (2, 0, 0, 0, 2)
    e.admin(f"update {table} set b = 10 where id = 'u1'")
    changed = pair.run()
    assert _traits(changed) == {"u1": {"b": 10}}


def test_on_exit_keep_sends_nothing_for_exits(wh_engine: Engine, tmp_path: Path) -> None:
    e = wh_engine
    table = _table(e, "id varchar(20), a varchar(20)", "('u1', 'x'), ('u2', 'y'), ('u3', 'z')")
    pair = Lockstep(e, tmp_path, f"select id as user_id, a from {table}", on_exit="keep")
    pair.run()
    e.admin(f"delete from {table} where id = 'u2'")
    kept = pair.run()
    assert (kept.counts[3], kept.counts[4], kept.calls) == (1, 0, [])
    assert pair.run().counts == (0, 0, 2, 0, 0)


def test_full_resync_sends_every_row_again(wh_engine: Engine, tmp_path: Path) -> None:
    e = wh_engine
    table = _table(e, "id varchar(20), a varchar(20)", "('u1', 'x'), ('u2', 'y')")
    pair = Lockstep(e, tmp_path, f"select id as user_id, a from {table}")
    pair.run()
    resync = pair.run(full_resync=True)
    assert (resync.counts[4], _traits(resync)) == (2, {"u1": {"a": "x"}, "u2": {"a": "y"}})
    assert pair.run().counts == (0, 0, 2, 0, 0)


def test_duplicate_and_null_ids_are_rejected_alike(wh_engine: Engine, tmp_path: Path) -> None:
    e = wh_engine
    table = _table(e, "id varchar(20), a varchar(20)", "('u1', 'x'), ('u2', 'y'), ('u1', 'z')")
    pair = Lockstep(e, tmp_path, f"select id as user_id, a from {table}")
    dupes = pair.run()
    assert (dupes.exit_code, dupes.status, dupes.calls) == (1, "invalid", [])
    assert dupes.error is not None
    assert "1 user_id value(s) appear more than once ('u1' ×2)" in dupes.error

    e.admin(f"delete from {table} where a = 'z'")
    pair.run()
    e.admin(f"update {table} set id = null where id = 'u2'")
    nulls = Lockstep(e, tmp_path / "nulls", f"select id as user_id, a from {table}")
    local, warehouse = nulls._run("local", {}), nulls._run("warehouse", {})
    assert (warehouse.exit_code, warehouse.status, warehouse.calls) == (local.exit_code, local.status, local.calls) == (1, "invalid", [])
    assert local.error is not None
    assert warehouse.error is not None
    # the same text in both modes, the row's position in the query's output included
    assert local.error.startswith(f"trait {nulls.name}: 1 row(s) have a null or empty user_id (result rows ")
    assert local.error.endswith(": filter them out in SQL: where user_id is not null")
    assert warehouse.error == local.error


def test_max_rows_is_enforced_alike(wh_engine: Engine, tmp_path: Path) -> None:
    e = wh_engine
    pair = Lockstep(e, tmp_path, e.dialect.numbers(), max_rows=100)
    capped = pair.run()
    assert (capped.exit_code, capped.status, capped.calls) == (1, "invalid", [])
    assert capped.error is not None
    assert "more than max_rows = 100" in capped.error
    pair.write(e.dialect.numbers() + " where n <= 100")
    assert pair.run().counts == (100, 0, 0, 0, 100)


def test_reader_cannot_write_the_data(bookkeeping_grants: str) -> None:
    """The grants above give the reader its bookkeeping schema and nothing on the data."""
    import psycopg

    dsn = bookkeeping_grants.replace("user=postgres", f"user={READER} password={READER_PASSWORD}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table sql_traits.probe (x int)")
        conn.execute("drop table sql_traits.probe")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("insert into conf.numbers values (0)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("create table conf.sneaky (x int)")


TRICKY_IDS = ["it's", "back\\slash", "tab\there", "new\nline", "cr\rhere", "ünïcode ✓", "%s", "?", "`tick`", '"dq"', " "]


def test_upload_ids_is_bulk_and_exact(wh_engine: Engine, tmp_path: Path) -> None:
    """25,000 ids (awkward ones among them) go up in a few statements and come back exactly."""
    import pyarrow as pa

    from traits.bookkeeping.sessions import open_session
    from traits.warehouses import open_warehouse

    e = wh_engine
    ids = TRICKY_IDS + [f"u{n}" for n in range(25_000 - len(TRICKY_IDS))]
    model = e.model(diff="warehouse")
    name = f"upload_{uuid.uuid4().hex[:8]}"
    before = len(e.backend.queries) if e.name == "bigquery" else 0
    with open_warehouse("wh", model, tmp_path) as wh, open_session("wh", model, wh, trait=name, config_dir=tmp_path) as session:
        schema = session.dialect.quote(session.schema)
        if e.name in ("snowflake", "bigquery"):  # (the differ creates it in a run)
            session.execute(f"create schema if not exists {schema}")
        table = session.table(name)
        batches = iter([pa.array(ids[:10_000]), pa.array(ids[10_000:])])
        assert session.upload_ids(table, batches) == len(ids)
        count, distinct = session.rows(f"select count(*), count(distinct sql_traits_id) from {table}")[0]
        assert (int(count), int(distinct)) == (len(ids), len(ids))
        back = {str(r[0]) for r in session.rows(f"select sql_traits_id from {table} where sql_traits_id not like 'u%'")}
        assert back == {i for i in ids if not i.startswith("u")}
        assert session.tables(name) == [name]
        session.execute(f"drop table {table}")
    if e.name == "bigquery":
        inserts = [q for q in e.backend.queries[before:] if q.lstrip().lower().startswith("insert")]
        assert 1 <= len(inserts) <= 2, f"{len(inserts)} insert jobs for {len(ids)} ids"


def test_bigquery_folds_in_a_session_transaction(bigquery_engine: Engine, tmp_path: Path) -> None:
    e = bigquery_engine
    table = _table(e, "id string, a string", "('u1', 'x'), ('u2', 'y')")
    pair = Lockstep(e, tmp_path, f"select id as user_id, a from {table}")
    pair.run()
    e.admin(f"update {table} set a = 'z' where id = 'u1'")
    before = len(e.backend.queries)
    assert pair.run().counts == (0, 1, 1, 0, 1)
    statements = [q.strip().lower() for q in e.backend.queries[before:]]
    assert "begin transaction" in statements
    assert "commit transaction" in statements
    assert statements.index("begin transaction") < statements.index("commit transaction")


def test_real_engine_spellings_the_stand_ins_do_not_check() -> None:
    """What the stand-ins accept either way, spelled as the real engines need it."""
    from traits.bookkeeping.dialects import dialect_for
    from traits.bookkeeping.session_bigquery import BigQuerySession
    from traits.bookkeeping.session_snowflake import _RENAME

    # BigQuery: keys not enforced, INFORMATION_SCHEMA qualified, the trait's SQL untouched
    bigquery = BigQuerySession.__new__(BigQuerySession)
    bigquery.location, bigquery.schema = "EU", "sql_traits"
    assert bigquery._sql("create table if not exists `s`.`runs` (run_id string primary key, t string)", ()) == (
        "create table if not exists `s`.`runs` (run_id string primary key not enforced, t string)")
    assert bigquery._sql("create table `s`.`t` (a string, b string, primary key (a, b))", ()).endswith("primary key (a, b) not enforced)")
    assert bigquery._sql("create schema `sql_traits`", ()) == "create schema `sql_traits` options (location = 'EU')"
    assert bigquery._sql("select 1 from information_schema.schemata where schema_name = %s", ("x",)) == (
        "select 1 from `region-eu`.INFORMATION_SCHEMA.SCHEMATA where schema_name = ?")
    embedded = "create table `s`.`r` as select * from (select 'primary key %s' as x from information_schema.tables) q"
    assert bigquery._sql(embedded, ()) == embedded
    # Snowflake: a rename stays in its schema; plain lower-case names are quoted as Snowflake folds them
    assert _RENAME.sub(r"alter table \1\2 rename to \1\3", 'alter table "SQL_TRAITS"."SNAPSHOT_A_NEXT" rename to "SNAPSHOT_A"') == (
        'alter table "SQL_TRAITS"."SNAPSHOT_A_NEXT" rename to "SQL_TRAITS"."SNAPSHOT_A"')
    snowflake = dialect_for("snowflake")
    assert (snowflake.quote("user_id"), snowflake.quote("userId"), snowflake.table("sql_traits", "snapshots")) == (
        '"USER_ID"', '"userId"', '"SQL_TRAITS"."SNAPSHOTS"')
    # the digests are summed as numbers that cannot overflow where a bigint sum would
    assert "numeric(38, 0)" in dialect_for("redshift").digest_part("h")
    assert "numeric(29, 0)" in dialect_for("bigquery").digest_part("h")
    assert dialect_for("bigquery").quote("a") == "`a`"
    assert dialect_for("redshift").text_type == "varchar(65535)"
