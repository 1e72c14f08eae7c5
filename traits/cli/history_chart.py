"""``traits history --chart``: one sparkline per count, oldest run left, on a log scale."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from traits.cli.output import escape
from traits.state.records import RunRecord

if TYPE_CHECKING:
    from rich.table import Table

BLOCKS = " ▁▂▃▄▅▆▇█"
SERIES = ("rows", "added", "changed", "exited", "sent", "failed")
COLORS = {"rows": "grey62", "added": "green", "changed": "blue", "exited": "dark_orange", "sent": "magenta", "failed": "red"}
STATUS_MARK = {"ok": "[green]●[/]", "partial": "[yellow]●[/]", "guarded": "[yellow]▲[/]", "invalid": "[red]✕[/]", "failed": "[red]✕[/]"}


def _spark(values: list[int], top: int) -> str:
    span = math.log10(1 + top) or 1.0
    return "".join(BLOCKS[0 if v <= 0 else max(1, round(math.log10(1 + v) / span * (len(BLOCKS) - 1)))] for v in values)


def chart(runs: list[RunRecord], name: str | None) -> Table:
    """``runs`` (newest first, as history reads them) as a table of sparklines."""
    ordered = [r for r in reversed(runs) if r.status != "running"]
    top = max([getattr(r, s) for r in ordered for s in SERIES] + [1])
    first, last = (ordered[0].started_at, ordered[-1].started_at) if ordered else ("", "")
    title = f"{escape(name) if name else 'all traits'}: {len(ordered)} runs, {first[:16].replace('T', ' ')} → {last[:16].replace('T', ' ')} (log scale)"
    from rich.table import Table

    table = Table(title=title, show_edge=False, header_style="bold", title_justify="left")
    table.add_column("")
    table.add_column("oldest → newest", no_wrap=True)
    table.add_column("last", justify="right")
    table.add_column("max", justify="right")
    table.add_row("status", "".join(STATUS_MARK.get(r.status, "?") for r in ordered), ordered[-1].status if ordered else "", "")
    for series in SERIES:
        values = [int(getattr(r, series)) for r in ordered]
        table.add_row(series, f"[{COLORS[series]}]{_spark(values, top)}[/]", f"{values[-1]:,}" if values else "", f"{max(values, default=0):,}")
    return table
