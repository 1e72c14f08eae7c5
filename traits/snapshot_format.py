"""The snapshot and row-hash format: what every file of rows holds, and how a row is hashed.

This module owns the layout of the files the pipeline and the state stores exchange; the rest
of the code names their columns as below and opens them through ``source``.

- A **snapshot** (one destination's, a list of Parquet files read newest-last: a later file's
  row for an id replaces an earlier one's) has ``SNAPSHOT_COLUMNS``: ``id``; ``row_hash``, the
  64-bit hash of what a call carries (``row_hash``); ``values_json``, the canonical JSON of the
  traits; ``user_id``, an account's user; ``exited``, set on an exit (its
  ``values_json`` is what the id held); ``hash_canary``, which hash function wrote ``row_hash``
  (``HASH_CANARY_SQL``); ``acked_run``, the run that got the row acknowledged.
- A **change file** (one run's diff for one destination, ``pipeline.diff``) has
  ``CHANGE_FILE_COLUMNS``: the id, its ``change`` (added, changed, exited), the new
  ``row_hash``, ``values_json`` and ``user_id``, and for changed rows and exits the snapshot's
  (``old_row_hash``, ``old_values_json``, ``old_user_id``). A first sync's change file carries
  the snapshot's columns as well (``delta_columns_sql``), so it can be kept as the delta.
- **Recorded changes** (a run's history, for ``traits revert``) have ``CHANGE_COLUMNS``: the
  id, its change, and ``before_*`` / ``after_*`` of ``row_hash``, ``values_json`` and ``user_id``.
- The **staged result** is the query's columns plus ``STAGED_ROW_HASH`` and ``STAGED_NON_FINITE``.

The **digest** of a set of (id, row_hash) rows is the sum of ``pair_hash_sql`` over them, mod
``DIGEST_MODULUS``: equal counts and digests mean the same rows (how an unchanged result is
recognised without a join). In warehouse mode the warehouse hashes rows with its own functions,
one recipe per engine recorded with its algorithm name (``bookkeeping.dialects``); those hashes
stay in the bookkeeping schema and never meet these.

Files written before these names (``h``, ``v``, ``u``/``uid``, ``deleted``, ``hv``, ``r``,
``old_h``…, ``before_h``…, ``__sql_traits_h``) are read through ``source`` with their columns
renamed, and columns a file predates are read as nulls, so snapshots, history and an
interrupted run's work files from earlier releases stay readable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from traits.columnar import quote_ident, sql_list, sql_path
from traits.pipeline.types import Column, from_json_sql, normalized_sql

if TYPE_CHECKING:
    import duckdb

#: bump when the row-hash normalization (``pipeline.types``) changes, so old hashes are recomputed
HASH_SCHEME = "sql-traits/h1"
#: SQL for a value that changes whenever the engine's hash function (or our scheme) does
HASH_CANARY_SQL = f"hash('{HASH_SCHEME}')"
DIGEST_MODULUS = 2**64

#: columns the staged result carries besides the query's own: each row's hash and rule check
STAGED_ROW_HASH = "__sql_traits_row_hash"
STAGED_NON_FINITE = "__sql_traits_non_finite"

Kind = Literal["snapshot", "changes", "history", "staged"]

#: the types of each kind's columns: a file lacking one (written before it existed) reads it as null
_TYPES: dict[Kind, dict[str, str]] = {
    "snapshot": {
        "id": "varchar", "row_hash": "ubigint", "values_json": "varchar", "user_id": "varchar", "exited": "boolean",
        "hash_canary": "ubigint", "acked_run": "varchar",
    },
    "changes": {
        "id": "varchar", "change": "varchar", "row_hash": "ubigint", "values_json": "varchar", "user_id": "varchar",
        "old_row_hash": "ubigint", "old_values_json": "varchar", "old_user_id": "varchar",
    },
    "history": {
        "id": "varchar", "change": "varchar", "before_row_hash": "ubigint", "before_values_json": "varchar", "before_user_id": "varchar",
        "after_row_hash": "ubigint", "after_values_json": "varchar", "after_user_id": "varchar",
    },
    "staged": {},
}
SNAPSHOT_COLUMNS = tuple(_TYPES["snapshot"])
#: what the diff and the folds read of a snapshot (``acked_run`` only profiles and compaction need)
SNAPSHOT_SELECT = ", ".join(c for c in SNAPSHOT_COLUMNS if c != "acked_run")
CHANGE_FILE_COLUMNS = tuple(_TYPES["changes"])
CHANGE_COLUMNS = tuple(_TYPES["history"])
#: the names files of earlier releases used, by their names now
_EARLIER: dict[str, str] = {
    "h": "row_hash", "v": "values_json", "u": "user_id", "uid": "user_id", "deleted": "exited", "hv": "hash_canary",
    "r": "acked_run", "old_h": "old_row_hash", "old_v": "old_values_json", "old_u": "old_user_id",
    "before_h": "before_row_hash", "before_v": "before_values_json", "before_u": "before_user_id",
    "after_h": "after_row_hash", "after_v": "after_values_json", "after_u": "after_user_id",
    "__sql_traits_h": STAGED_ROW_HASH, "__sql_traits_bad": STAGED_NON_FINITE,
}
#: the staged result is the query's columns: only our own two are ever renamed there
_STAGED_EARLIER = {"__sql_traits_h", "__sql_traits_bad"}
#: every column of a staged file that is not the query's (an interrupted run's may have the earlier names)
STAGED_OWN_COLUMNS = (STAGED_ROW_HASH, STAGED_NON_FINITE, *sorted(_STAGED_EARLIER))


@dataclass(frozen=True)
class Snapshot:
    """One destination's snapshot as its state store hands it out: Parquet files, oldest first."""

    files: tuple[Path, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.files)

    def rows(
        self, con: duckdb.DuckDBPyConnection, columns: str = SNAPSHOT_SELECT, per_file: Mapping[Path, str] | None = None,
        *, keep_exited: bool = False,
    ) -> str:
        """SQL for its current rows (``latest_rows``)."""
        return latest_rows(con, self.files, columns, per_file, keep_exited=keep_exited)


@dataclass(frozen=True)
class Changes:
    """One run's changes for one destination: the change file its diff (or a revert's plan) wrote."""

    path: Path

    @classmethod
    def in_run(cls, run_dir: Path, destination: str) -> Changes:
        """The changes a run keeps for a destination in its work directory."""
        return cls(run_dir / f"changes-{destination}.parquet")

    def exists(self) -> bool:
        return self.path.exists()


def column_names(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """The top-level columns of a Parquet file, as written (read from its footer)."""
    return [str(d[0]) for d in con.execute(f"select * from read_parquet('{sql_path(path)}') limit 0").description]


def source(con: duckdb.DuckDBPyConnection, path: Path, kind: Kind, *, file_row_number: bool = False) -> str:
    """``path`` as a SQL relation with this release's column names (see the module's docstring)."""
    options = ", file_row_number = true" if file_row_number else ""
    read = f"read_parquet('{sql_path(path)}'{options})"
    names = column_names(con, path)
    earlier = _STAGED_EARLIER if kind == "staged" else set(_EARLIER)
    present = set(names)
    renames, dropped = [], []
    for name in names:
        if name not in earlier:
            continue
        new = _EARLIER[name]
        if new in present or (name == "u" and "uid" in present):
            dropped.append(name)  # an older first sync's change file held the user id twice
        else:
            renames.append(f"{name} as {new}")
            present.add(new)
    missing = [f"cast(null as {t}) as {c}" for c, t in _TYPES[kind].items() if c not in present]
    if not renames and not dropped and not missing:
        return read
    star = "*" + (f" exclude ({', '.join(dropped)})" if dropped else "") + (f" rename ({', '.join(renames)})" if renames else "")
    return f"(select {', '.join([star, *missing])} from {read})"


def row_hash(columns: list[Column], user_id_sql: str | None, *, decimals: str, allow_non_finite: bool) -> str:
    """SQL for the 64-bit hash of what a call carries: the traits by value and type (each
    normalized as its JSON form stands for it, ``pipeline.types``), in column-name order, then
    an account's user id, then the columns' names and categories."""
    values = [
        normalized_sql(c.category, quote_ident(c.name), c.duck_type, decimals=decimals, allow_non_finite=allow_non_finite)
        for c in sorted(columns, key=lambda c: c.name)
    ]
    return f"hash({', '.join(values)}, {user_id_sql or 'cast(null as varchar)'}, {_signature(columns)})"


def rehash_sql(columns: list[Column], *, decimals: str) -> str:
    """``row_hash`` of a snapshot row, recomputed from its ``values_json`` and ``user_id``."""
    values = [from_json_sql(c, "values_json", decimals=decimals) for c in sorted(columns, key=lambda c: c.name)]
    return f"hash({', '.join(values)}, user_id, {_signature(columns)})"


def _signature(columns: list[Column]) -> str:
    text = ",".join(f"{c.name}:{c.category}" for c in sorted(columns, key=lambda c: c.name))
    return "'" + text.replace("'", "''") + "'"


def pair_hash_sql(row_hash: str = "row_hash") -> str:
    """SQL for the hash of one (id, row hash) pair: a digest is their sum."""
    return f"hash(id, {row_hash})"


def digest_sql(relation: str, *also: str) -> str:
    """SQL for (count, digest) of a relation with columns id and row_hash, then the aggregates ``also``."""
    more = "".join(f", {a}" for a in also)
    return f"select count(*), coalesce(sum({pair_hash_sql()}), 0) % {DIGEST_MODULUS}{more} from ({relation})"


def delta_columns_sql(run_id: str) -> str:
    """The columns that make a file of added rows (a first sync's change file) a snapshot delta too.

    Snapshot files are read by column name, so a change file that also carries these (besides
    ``id, row_hash, values_json, user_id``, which the two layouts share) can be kept as the
    snapshot's delta once every row in it was acknowledged, instead of being written again
    (``state.sql.record_and_fold``).
    """
    run = "'" + run_id.replace("'", "''") + "'"
    return f"false as exited, {HASH_CANARY_SQL} as hash_canary, {run} as acked_run"


def write_no_changes(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    """A change file with no rows: nothing to send."""
    empty = ", ".join(f"cast(null as {t}) as {c}" for c, t in _TYPES["changes"].items())
    con.execute(f"COPY (select {empty} where false) TO '{sql_path(out)}' (FORMAT parquet)")


def latest_rows(
    con: duckdb.DuckDBPyConnection, files: Sequence[Path], columns: str = SNAPSHOT_SELECT,
    per_file: Mapping[Path, str] | None = None, *, keep_exited: bool = False,
) -> str:
    """SQL for the current rows of a snapshot: a later file's row for an id wins; exits dropped.

    Written as anti joins of each file against the files after it, which is cheap when the
    first file is large and the later ones small (the shape compaction keeps). ``per_file``
    replaces the select list for some files (to rehash rows an older engine hashed).
    ``keep_exited`` keeps the exits (compaction keeps them, so a profile can say an id exited).
    """
    if not files:
        return (
            "select cast(null as varchar) as id, cast(null as ubigint) as row_hash, cast(null as varchar) as values_json, "
            "cast(null as varchar) as user_id, false as exited, cast(null as ubigint) as hash_canary where false"
        )
    parts = []
    for index, file in enumerate(files):
        later = files[index + 1 :]
        select = (per_file or {}).get(file, columns)
        relation = source(con, file, "snapshot")
        if later:
            parts.append(f"select {select} from {relation} where id not in (select id from read_parquet({sql_list(later)}))")
        else:
            parts.append(f"select {select} from {relation}")
    union = "\nunion all\n".join(parts)
    return f"select * from (\n{union}\n)" + ("" if keep_exited else " where not exited")


#: a change file's rows as recorded changes (``CHANGE_COLUMNS``)
CHANGES_AS_HISTORY = (
    "id, change, old_row_hash as before_row_hash, old_values_json as before_values_json, old_user_id as before_user_id, "
    "case when change = 'exited' then null else row_hash end as after_row_hash, "
    "case when change = 'exited' then null else values_json end as after_values_json, "
    "case when change = 'exited' then null else user_id end as after_user_id"
)
#: a snapshot delta of added rows read as recorded changes (``CHANGE_COLUMNS``)
DELTA_AS_HISTORY = (
    "id, 'added' as change, cast(null as ubigint) as before_row_hash, cast(null as varchar) as before_values_json, "
    "cast(null as varchar) as before_user_id, row_hash as after_row_hash, values_json as after_values_json, user_id as after_user_id"
)
#: a change file's rows as a snapshot delta's (an exit keeps the values the id had)
CHANGES_AS_SNAPSHOT = (
    "id, row_hash, case when change = 'exited' then old_values_json else values_json end as values_json, user_id, "
    f"change = 'exited' as exited, {HASH_CANARY_SQL} as hash_canary"
)

__all__ = [
    "CHANGES_AS_HISTORY", "CHANGES_AS_SNAPSHOT", "CHANGE_COLUMNS", "CHANGE_FILE_COLUMNS", "DELTA_AS_HISTORY", "DIGEST_MODULUS",
    "HASH_CANARY_SQL", "HASH_SCHEME", "SNAPSHOT_COLUMNS", "SNAPSHOT_SELECT", "STAGED_NON_FINITE", "STAGED_OWN_COLUMNS", "STAGED_ROW_HASH",
    "Changes", "Snapshot", "column_names", "delta_columns_sql", "digest_sql", "latest_rows", "pair_hash_sql", "rehash_sql", "row_hash", "source",
    "write_no_changes",
]
