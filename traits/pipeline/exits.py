"""Exits: what an exit sends (``on_exit``) and when an absent id really exits (``exit_after``).

``ExitPolicy`` turns ``on_exit`` into, per column, the JSON text an exit call carries for it
(``null`` to clear, a literal default) or nothing (``keep``). The same rule is written twice,
as Python (``traits``) and as SQL for the columnar engine (``traits_sql``), byte for byte
the same; an exit that is left with no column sends no call.

``hold_back`` applies ``exit_after``: an id the diff found missing is only an exit once it
has been missing ``N`` consecutive runs or that long. Until then it is *pending*: it leaves
the change file (nothing is sent, its snapshot values stand) and is counted in the run's
pending-exit bookkeeping, a small file per (trait, destination) with each missing id's first
missing time and miss count. The state store keeps that file and advances it only at commit,
like the snapshot; an id that comes back drops out of it. Each entry names the run that
counted it, so a resumed run (same run_id) does not count the same miss twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from json.encoder import encode_basestring
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traits.columnar import sql_path
from traits.config.models import ExitAfter, OnExitRules
from traits.snapshot_format import source

if TYPE_CHECKING:
    import duckdb

    from traits.state.base import StateStore

#: pending ids a run's record keeps per destination (for preview and dry runs)
PENDING_SHOWN = 10
#: the columns of a pending-exit file
PENDING_COLUMNS = "id, first_missing_at, misses, run_id"


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class ExitPolicy:
    """Per column: the JSON text an exit sends, or None to keep the column out of the call."""

    default: str | None
    columns: dict[str, str | None]

    @classmethod
    def of(cls, on_exit: str | OnExitRules | ExitPolicy) -> ExitPolicy:
        if isinstance(on_exit, ExitPolicy):
            return on_exit
        rules = OnExitRules(default="keep" if on_exit == "keep" else "clear") if isinstance(on_exit, str) else on_exit
        return cls(_rule(rules.default), {k: _rule(v) for k, v in rules.columns.items()})

    @property
    def sends_nothing(self) -> bool:
        """Whether no exit ever sends a call (``on_exit: keep`` with no column sent)."""
        return self.default is None and all(v is None for v in self.columns.values())

    def rule(self, column: str) -> str | None:
        return self.columns.get(column, self.default)

    def traits(self, old_values_json: str | None) -> str | None:
        """The exit call's traits JSON for a row whose last values were ``old_values_json``; None: no call."""
        old: dict[str, Any] = json.loads(old_values_json or "{}")
        parts = [f"{encode_basestring(k)}:{rule}" for k in old if (rule := self.rule(k)) is not None]
        return "{" + ",".join(parts) + "}" if parts else None

    def traits_sql(self, old_values_json: str = "old_values_json") -> str:
        """``traits`` as SQL over the column ``old_values_json``: NULL where no call is sent."""
        default = "NULL" if self.default is None else _lit(self.default)
        if self.columns:
            whens = " ".join(f"when {_lit(k)} then {'NULL' if v is None else _lit(v)}" for k, v in self.columns.items())
            rule = f"(case k {whens} else {default} end)"
        else:
            rule = default
        keys = f"json_keys(coalesce({old_values_json}, '{{}}'))"
        parts = f"list_filter(list_transform({keys}, lambda k: to_json(k)::VARCHAR || ':' || {rule}), lambda x: x is not null)"
        return f"(case when len({parts}) > 0 then concat('{{', array_to_string({parts}, ','), '}}') end)"


def _rule(value: object) -> str | None:
    if value == "keep":
        return None
    if value == "clear" or value is None:
        return "null"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def exit_calls(con: duckdb.DuckDBPyConnection, changes: Path, policy: ExitPolicy) -> int:
    """How many exits in a change file would really send a call."""
    if policy.sends_nothing:
        return 0
    row = con.execute(
        f"select count(*) from {source(con, changes, 'changes')} where change = 'exited' and {policy.traits_sql()} is not null"
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass
class Held:
    """What ``hold_back`` kept back from one destination's exits."""

    exited: int
    pending: int
    #: the first few pending ids, each with how many runs it has been missing and when it exits
    shown: list[dict[str, Any]]


def pending_path(changes: Path, destination: str) -> Path:
    """The pending-exit file a run writes beside its change file, saved by commit."""
    return changes.with_name(f"pending-{destination}.parquet")


def hold_back(
    con: duckdb.DuckDBPyConnection, state: StateStore, trait: str, destination: str, changes: Path, *,
    exit_after: ExitAfter | None, run_id: str, started_at: str, exited: int,
) -> Held:
    """Take the exits that are not due yet out of ``changes``; write the run's pending-exit file.

    ``exited`` is the diff's count of exits: with none, no id is missing and there is nothing
    to read (the pending file is written empty only when one is kept, to clear it).
    """
    out = pending_path(changes, destination)
    changed = source(con, changes, "changes")
    previous = state.pending_exits(trait, destination)
    if exited == 0:
        if previous is not None:
            con.execute(f"COPY (select {PENDING_COLUMNS} from read_parquet('{sql_path(previous)}') where false) TO '{sql_path(out)}' (FORMAT parquet)")
        return Held(exited=0, pending=0, shown=[])
    before = (
        f"read_parquet('{sql_path(previous)}')" if previous is not None
        else "(select cast(null as varchar) as id, cast(null as varchar) as first_missing_at, 0 as misses, "
        "cast(null as varchar) as run_id where false)"
    )
    now = _lit(started_at)
    con.execute(
        f"""create or replace temp table missing as
        select c.id, coalesce(p.first_missing_at, {now}) as first_missing_at,
               cast(case when p.run_id = {_lit(run_id)} then p.misses else coalesce(p.misses, 0) + 1 end as integer) as misses,
               {_lit(run_id)} as run_id
        from {changed} c left join {before} p on p.id = c.id
        where c.change = 'exited'"""
    )
    if exit_after is None:
        due = "true"
    elif exit_after.runs is not None:
        due = f"misses >= {int(exit_after.runs)}"
    else:
        due = f"epoch(cast({now} as timestamptz)) - epoch(cast(first_missing_at as timestamptz)) >= {float(exit_after.seconds or 0)}"
    con.execute(f"alter table missing add column due boolean; update missing set due = {due}")
    row = con.execute("select count(*) filter (where due), count(*) filter (where not due) from missing").fetchone()
    exited, pending = (int(row[0]), int(row[1])) if row else (0, 0)
    if pending:
        tmp = changes.with_name(changes.name + ".held.tmp")
        con.execute(
            f"""COPY (select * from {changed} where not (change = 'exited' and id in (select id from missing where not due)))
            TO '{sql_path(tmp)}' (FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE 20000)"""
        )
        os.replace(tmp, changes)
    con.execute(f"COPY (select {PENDING_COLUMNS} from missing) TO '{sql_path(out)}' (FORMAT parquet)")
    rows = con.execute(f"select id, misses, first_missing_at from missing where not due order by id limit {PENDING_SHOWN}").fetchall()
    con.execute("drop table missing")
    shown = [{"id": r[0], "missing_runs": int(r[1]), "first_missing_at": r[2], "exits": _exits_when(exit_after, int(r[1]), r[2])} for r in rows]
    return Held(exited=exited, pending=pending, shown=shown)


def _exits_when(exit_after: ExitAfter | None, misses: int, first_missing_at: str) -> str:
    if exit_after is None:
        return "now"
    if exit_after.runs is not None:
        left = exit_after.runs - misses
        return f"if still missing {left} more run(s)"
    at = datetime.fromisoformat(first_missing_at.replace("Z", "+00:00")) + timedelta(seconds=exit_after.seconds or 0)
    return "at the first run after " + at.isoformat(timespec="seconds").replace("+00:00", "Z")


__all__ = ["ExitPolicy", "Held", "exit_calls", "hold_back", "pending_path"]
