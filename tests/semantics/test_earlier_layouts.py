"""State written by a release before the row files' columns were named for what they hold
(``h``, ``v``, ``u``, ``deleted``, ``hv``, ``r``, ``before_h``…) is read as it is: an unchanged
result sends nothing, a change sends only itself with the right values, and a revert reads the
recorded changes, in both state stores."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tests.conftest import PG_DSN
from tests.semantics.conftest import SemanticsProject
from tests.semantics.test_revert_e2e import TRAIT, _before_and_bad_run

#: the names an earlier release wrote, by this release's names
EARLIER = {
    "row_hash": "h", "values_json": "v", "user_id": "u", "exited": "deleted", "hash_canary": "hv", "acked_run": "r",
    "old_row_hash": "old_h", "old_values_json": "old_v", "old_user_id": "old_u",
    "before_row_hash": "before_h", "before_values_json": "before_v", "before_user_id": "before_u",
    "after_row_hash": "after_h", "after_values_json": "after_v", "after_user_id": "after_u",
}
PG_EARLIER = {
    "snapshot_rows": ["row_hash", "values_json", "user_id", "hash_canary", "acked_run"],
    "exited_rows": ["values_json", "user_id", "acked_run"],
    "run_changes": ["before_row_hash", "before_values_json", "before_user_id", "after_row_hash", "after_values_json", "after_user_id"],
}


def _rewrite_as_earlier(root: Path) -> int:
    """Every Parquet file of the state directory, rewritten with the earlier names."""
    con = duckdb.connect()
    count = 0
    for path in sorted(root.rglob("*.parquet")):
        names = [d[0] for d in con.execute(f"select * from read_parquet('{path}') limit 0").description]
        renames = ", ".join(f"{n} as {EARLIER[n]}" for n in names if n in EARLIER)
        if not renames:
            continue
        tmp = path.with_name(path.name + ".earlier")
        con.execute(f"COPY (select * rename ({renames}) from read_parquet('{path}')) TO '{tmp}' (FORMAT parquet)")
        tmp.replace(path)  # a new file: a hard link to it (a kept first-sync delta) keeps the old bytes
        count += 1
    con.close()
    return count


def _postgres_as_earlier(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        for table, columns in PG_EARLIER.items():
            for column in columns:
                conn.execute(f'alter table "{schema}".{table} rename column {column} to {EARLIER[column]}')  # type: ignore[arg-type]
        conn.execute(f"comment on schema \"{schema}\" is 'sql-traits state, layout 4'")  # type: ignore[arg-type]


def _postgres_columns(schema: str, table: str) -> set[str]:
    import psycopg

    with psycopg.connect(PG_DSN) as conn:
        rows = conn.execute(
            "select column_name from information_schema.columns where table_schema = %s and table_name = %s", (schema, table)
        ).fetchall()
    return {str(r[0]) for r in rows}


def test_state_of_an_earlier_release_is_read_without_resending(semantics: SemanticsProject) -> None:
    p = semantics
    p.configure(TRAIT)
    bad, before = _before_and_bad_run(p, 30)
    after_bad = p.profiles()
    state_root = p.root / ".traits"
    rewritten = _rewrite_as_earlier(state_root)
    postgres_schema = p.state.rsplit("schema=", 1)[1] if p.state.startswith("postgresql://") else None
    if postgres_schema is None:
        assert rewritten >= 2  # the snapshot and the bad run's recorded changes at least
    else:
        _postgres_as_earlier(postgres_schema)

    # unchanged: nothing is sent (the hashes were read under their earlier names)
    mark = p.mark()
    code, out = p.run_json("t")
    assert code == 0, out
    assert (out["runs"][0]["unchanged"], out["runs"][0]["sent"]) == (28 + 5, 0)
    assert p.calls_since(mark) == []
    if postgres_schema is not None:
        assert {"row_hash", "values_json", "user_id", "hash_canary", "acked_run"} <= _postgres_columns(postgres_schema, "snapshot_rows")
        assert not {"h", "v", "u", "hv", "r"} & _postgres_columns(postgres_schema, "snapshot_rows")
        assert "before_values_json" in _postgres_columns(postgres_schema, "run_changes")

    # one change: exactly that row is sent, with its values (the rest read from the earlier snapshot)
    p.sql("update people set plan = 'team' where id = 'u9'")
    mark = p.mark()
    code, out = p.run_json("t")
    assert code == 0, out
    assert (out["runs"][0]["changed"], out["runs"][0]["sent"]) == (1, 1)
    assert [(c["userId"], c["traits"]) for c in p.calls_since(mark)] == [("u9", {"plan": "team", "score": 9})]

    # a revert of the bad run reads its recorded changes, written under the earlier names
    code, out = p.run_json_cmd("revert", bad)
    assert code == 0, out
    assert out["runs"][0]["sent"] == 27
    assert p.profiles() == {**before, "u9": {"plan": "team", "score": 9}}
    assert after_bad != before
