"""``traits ls``: the traits, with where their rows come from and where they go."""

from __future__ import annotations

from typing import Any

import click

from traits.cli.context import Context
from traits.cli.output import emit_json, escape, stdout
from traits.config.selectors import select


@click.command(name="ls")
@click.option("--select", "-s", "selectors", multiple=True, metavar="S",
              help="dbt-like selector: names, globs, tag:, source:, destination:, model:; space = union, comma = intersection.")
@click.option("--exclude", "excludes", multiple=True, metavar="S", help="Leave out what this selector selects.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def ls(obj: Context, selectors: tuple[str, ...], excludes: tuple[str, ...], as_json: bool) -> None:
    """List traits (every one, or the selected): source, dbt model or SQL file, tags, destinations, schedule."""
    config = obj.config()
    names = select(config, selectors, excludes, allow_empty=True) if selectors or excludes else list(config.traits)
    rows: list[dict[str, Any]] = []
    for name in names:
        trait = config.traits[name]
        reads = f"model {trait.model}" if trait.model else (f"sql_file {trait.sql_file}" if trait.sql_file else "sql")
        rows.append({
            "trait": name, "kind": trait.kind, "source": trait.source, "source_type": config.sources[trait.source].type,
            "diff": config.diff_mode(name),
            "model": trait.model, "sql_file": trait.sql_file, "reads": reads, "tags": list(trait.tags),
            "destinations": list(trait.destinations), "schedule": str(trait.schedule), "enabled": trait.enabled,
        })
    if as_json:
        emit_json({"ok": True, "traits": rows})
        return
    if not rows:
        stdout.print("no traits" + (" match the selection" if selectors or excludes else " defined"))
        return
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for column in ("trait", "kind", "source", "diff", "reads", "tags", "destinations", "schedule"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            escape(row["trait"]), row["kind"], escape(row["source"]), row["diff"], escape(row["reads"]), escape(", ".join(row["tags"]) or "-"),
            escape(", ".join(row["destinations"]) or "-"), escape(row["schedule"] + ("" if row["enabled"] else " (disabled)")),
        )
    stdout.print(table)
