"""The known-id guard (``min_known_ratio``): a wrong id column stops the run before sending.

An id column holding emails, or a partner's ids, matches almost no known profile. With the
source's (or trait's) ``identity:`` table, the guard looks a sample of the result's ids up in
it (all of them up to ``SAMPLE_IDS``, else a deterministic sample of that many); without one,
it compares the result with the trait's own snapshot at each destination (the share of ids
ever synced), and a first sync is exempt. Below ``min_known_ratio`` the run is guarded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from traits.errors import GuardError
from traits.snapshot_format import Changes, source
from traits.warehouses import open_warehouse

if TYPE_CHECKING:
    import duckdb

    from traits.config.models import Config, Identity
    from traits.pipeline.validate import Shape
    from traits.state.records import RunRecord

#: the most ids looked up in the identity table
SAMPLE_IDS = 10_000
EXAMPLES = 5


def identity_for(config: Config, name: str) -> Identity | None:
    """The table of known ids for a trait: its own, else its source's (for user traits)."""
    trait = config.traits[name]
    source = config.sources[trait.source]
    return trait.identity or (source.identity if trait.kind == "user" else None)


def check_known_ratio(config: Config, name: str, con: duckdb.DuckDBPyConnection, shape: Shape, staged: Path, record: RunRecord) -> None:
    minimum = config.traits[name].min_known_ratio
    if minimum is None or record.rows == 0:
        return
    identity = identity_for(config, name)
    if identity is not None:
        rows = con.execute(
            f"select id from (select {shape.id_sql} as id from {source(con, staged, 'staged')}) order by hash(id), id limit {SAMPLE_IDS}"
        ).fetchall()
        ids = [str(r[0]) for r in rows]
        trait = config.traits[name]
        with open_warehouse(trait.source, config.sources[trait.source], config.directory) as warehouse:
            found = warehouse.known_ids(identity.table, identity.column, ids)
        known, checked = sum(1 for i in ids if i in found), len(ids)
        unknown = sorted(i for i in ids if i not in found)[:EXAMPLES]
        basis = f"the identity table {identity.table}.{identity.column}"
        sampled = f"{checked:,} of {record.rows:,} ids checked" if checked < record.rows else f"{checked:,} ids"
    else:
        synced = {d: c for d, c in record.destinations.items() if c.unchanged + c.changed + c.exited + c.pending_exit > 0}
        if not synced:
            return  # a first sync: nothing to compare with
        destination, counts = min(synced.items(), key=lambda item: item[1].added)
        checked, known = record.rows, record.rows - counts.added
        changes = Changes.in_run(staged.parent, destination).path
        unknown = [str(r[0]) for r in con.execute(
            f"select id from {source(con, changes, 'changes')} where change = 'added' order by id limit {EXAMPLES}"
        ).fetchall()] if changes.exists() else []
        basis = f"the ids already synced to {destination}"
        sampled = f"{checked:,} ids"
    ratio = known / checked if checked else 1.0
    if ratio < minimum:
        examples = ", ".join(repr(i) for i in unknown)
        raise GuardError(
            f"trait {name}: only {ratio:.0%} of the result's ids ({known:,} of {sampled}) are known in {basis}, "
            f"fewer than min_known_ratio = {minimum:.0%} (first unknown: {examples}); nothing was sent",
            hint=f"is {shape.id_column.name} the right id column? If these ids are right, run again with --force",
        )


__all__ = ["check_known_ratio", "identity_for"]
