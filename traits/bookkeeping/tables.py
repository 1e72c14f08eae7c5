"""The bookkeeping schema's tables, their names, and the lineage that says a snapshot is current.

- ``snapshots``: one row per (trait, destination): its table, the hash algorithm that wrote
  it, its row count and digest (``dialects``), and its *lineage*, a token each fold renews;
- ``snapshot_<key>``: one destination's snapshot, (``sql_traits_id``, ``sql_traits_row_hash``);
  a NULL hash marks an id whose last change was not acknowledged (it differs from any row);
- ``runs``: the runs that have per-run tables, so the next run of a trait drops a killed
  run's leftovers;
- ``run_<run>_result``, ``run_<run>_changes_<key>``, ``run_<run>_acked_<key>``: one run's
  result, changes and uploaded acknowledgements, dropped when the run ends.

The local state store keeps the lineage it last saw per (trait, destination)
(``state.base.warehouse_lineage_key``); the warehouse's snapshot is trusted only when the two
agree. Every commit to the local store and every reset forgets it (a local-mode run, a
``revert``, a ``reset``), and a warehouse fold, which follows its local commit, renews it.
"""

from __future__ import annotations

import hashlib
import re

ID = "sql_traits_id"
ROW_HASH = "sql_traits_row_hash"
CHANGE = "sql_traits_change"
#: a changes table's row hashes: the result's and the snapshot's (a digest proof subtracts them)
NEW_HASH = "sql_traits_new_hash"
OLD_HASH = "sql_traits_old_hash"
UNSENT = "unsent"
UNSENT_DIFFERENT = "unsent_different"


def destination_key(trait: str, destination: str) -> str:
    """A short name for a (trait, destination) pair, safe in any engine's table names."""
    return hashlib.sha256(f"{trait}\0{destination}".encode()).hexdigest()[:16]


def snapshot_table(trait: str, destination: str) -> str:
    return f"snapshot_{destination_key(trait, destination)}"


def run_prefix(run_id: str) -> str:
    return "run_" + re.sub(r"[^a-z0-9]", "_", run_id.lower()) + "_"


def result_table(run_id: str) -> str:
    return run_prefix(run_id) + "result"


def changes_table(run_id: str, trait: str, destination: str) -> str:
    return run_prefix(run_id) + "changes_" + destination_key(trait, destination)


def upload_table(run_id: str, trait: str, destination: str, what: str) -> str:
    return run_prefix(run_id) + what + "_" + destination_key(trait, destination)
