"""The warehouse-side diff (``diff: warehouse``): the warehouse hashes, validates and diffs.

Each run materialises the trait's result, with its id and a row hash the warehouse computes
(``dialects``), in the bookkeeping schema; each destination's snapshot of (id, row hash) lives
there too, and the diff is a join the warehouse runs. Only the added and changed rows (their
values) and the exited ids leave the warehouse. After delivery the acknowledged ids go back in
bulk and each snapshot advances in one transaction (``differ.WarehouseDiffer.fold``).

The local state store keeps what it keeps in local mode (what each destination holds, history,
acknowledgement logs), so ``explain``, the console, ``revert`` and a kill's resume work the same
in both modes; the warehouse's snapshot is trusted only while it and the local store agree on
who advanced it last (``tables.Lineage``). When they do not (a first warehouse-mode run, a
``reset``, a run in local mode in between, a new hash algorithm), the run fetches the whole
result once, diffs it locally, and rebuilds the warehouse's snapshot from it: a reseed, never a
resend of what the destination already holds.
"""
