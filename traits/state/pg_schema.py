"""The Postgres state store's tables, and how a store of an earlier layout is brought up to date.

``SCHEMA_LAYOUT`` names the layout and is kept as the schema's comment: a store whose comment
names this layout is opened without any DDL (ALTER TABLE takes an exclusive lock even when there
is nothing to add). Otherwise, in one transaction serialized by an advisory lock, the tables are
created where missing, an earlier layout's columns are renamed (``_RENAMES``: a catalog-only
change in Postgres) and the columns added since are added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from traits.state.pg_locks import lock_key  # the one key that serializes schema changes

if TYPE_CHECKING:
    import psycopg

#: names the table layout below; change it when the layout changes, so stores migrate on open
SCHEMA_LAYOUT = "sql-traits state, layout 5"

_TABLES = """
create table if not exists {s}.runs (
    run_id text primary key,
    trait text not null,
    started_at text not null,
    status text not null,
    record jsonb not null,
    seq bigserial
);
create index if not exists runs_by_trait on {s}.runs (trait, started_at);
create table if not exists {s}.kv (key text primary key, value jsonb not null);
create table if not exists {s}.locks (
    trait text primary key,
    holder text not null,
    acquired_at timestamptz not null default now()
);
alter table {s}.locks add column if not exists epoch bigint not null default 0;
alter table {s}.locks add column if not exists lock_pid integer;
alter table {s}.locks add column if not exists keeper_pid integer;
alter table {s}.locks add column if not exists keeper_start timestamptz;
create table if not exists {s}.snapshots (
    trait text not null,
    destination text not null,
    version bigint not null,
    token text not null,
    primary key (trait, destination)
);
create table if not exists {s}.snapshot_rows (
    trait text not null,
    destination text not null,
    id text not null,
    row_hash bigint,
    values_json text,
    primary key (trait, destination, id)
);
create table if not exists {s}.exited_rows (
    trait text not null,
    destination text not null,
    id text not null,
    values_json text,
    user_id text,
    acked_run text,
    primary key (trait, destination, id)
);
create table if not exists {s}.acks (
    run_id text not null,
    trait text not null,
    destination text not null,
    id text not null
);
create index if not exists acks_by_run on {s}.acks (run_id, destination);
"""
#: columns added since the first layout, after ``_RENAMES``
_ADDED = """
alter table {s}.snapshot_rows add column if not exists user_id text;
alter table {s}.snapshot_rows add column if not exists hash_canary bigint;
alter table {s}.snapshot_rows add column if not exists acked_run text;
"""
#: the columns earlier layouts named otherwise, by table: renamed when a store is opened
_RENAMES = {
    "snapshot_rows": {"h": "row_hash", "v": "values_json", "u": "user_id", "hv": "hash_canary", "r": "acked_run"},
    "exited_rows": {"v": "values_json", "u": "user_id", "r": "acked_run"},
    "run_changes": {
        "before_h": "before_row_hash", "before_v": "before_values_json", "before_u": "before_user_id",
        "after_h": "after_row_hash", "after_v": "after_values_json", "after_u": "after_user_id",
    },
}
#: the tables of run changes and pending exits (``pg_changes``)
_CHANGE_TABLES = """
create table if not exists {s}.run_changes (
    trait text not null,
    destination text not null,
    run_id text not null,
    id text not null,
    change text not null,
    before_row_hash bigint,
    before_values_json text,
    before_user_id text,
    after_row_hash bigint,
    after_values_json text,
    after_user_id text,
    recorded_at timestamptz not null default now(),
    primary key (trait, destination, run_id, id)
);
create index if not exists run_changes_by_age on {s}.run_changes (recorded_at);
create table if not exists {s}.pending_exits (
    trait text not null,
    destination text not null,
    id text not null,
    first_missing_at text not null,
    misses integer not null,
    run_id text not null,
    primary key (trait, destination, id)
);
"""


def is_current(conn: psycopg.Connection[Any], schema: str) -> bool:
    """Whether the schema's comment names this layout (nothing to create or migrate)."""
    row = conn.execute("select obj_description(to_regnamespace(%s)::oid, 'pg_namespace')", (schema,)).fetchone()
    return bool(row and row[0] == SCHEMA_LAYOUT)


def create_or_migrate(conn: psycopg.Connection[Any], schema: str, s: str) -> None:
    """Bring the schema (``s``: its quoted name) to this layout, in the caller's transaction."""
    # concurrent ``create ... if not exists`` can still collide; serialize them
    conn.execute("select pg_advisory_xact_lock(%s)", (lock_key(schema, "\0schema"),))
    conn.execute(f"create schema if not exists {s}")
    conn.execute(_TABLES.format(s=s))
    conn.execute(_CHANGE_TABLES.format(s=s))
    _rename_earlier_columns(conn, schema, s)
    conn.execute(_ADDED.format(s=s))
    conn.execute(f"comment on schema {s} is '{SCHEMA_LAYOUT}'")


def _rename_earlier_columns(conn: psycopg.Connection[Any], schema: str, s: str) -> None:
    """Give an earlier layout's columns (``_RENAMES``) their names."""
    rows = conn.execute("select table_name, column_name from information_schema.columns where table_schema = %s", (schema,)).fetchall()
    present = {(str(t), str(c)) for t, c in rows}
    for table, renames in _RENAMES.items():
        for old, new in renames.items():
            if (table, old) in present and (table, new) not in present:
                conn.execute(f"alter table {s}.{table} rename column {old} to {new}")
