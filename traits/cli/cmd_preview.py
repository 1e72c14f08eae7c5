"""``traits preview``: what a run would do now, before it does it."""

from __future__ import annotations

import json
from typing import Any

import click

from traits import columnar
from traits.cli.context import Context, check_trait
from traits.cli.output import TerminalProgress, emit_json, error_line, escape, stdout
from traits.config import Config
from traits.config.selectors import select
from traits.errors import ExitCode, prefixed
from traits.pipeline.exits import ExitPolicy
from traits.pipeline.known import identity_for
from traits.pipeline.run import RunOptions, run_trait
from traits.pipeline.trait_keys import reserved_warnings
from traits.state.base import StateStore
from traits.warehouses import open_warehouse


@click.command()
@click.argument("name", required=False)
@click.option("--select", "-s", "selectors", multiple=True, metavar="S",
              help="Preview each selected trait (dbt-like: names, globs, tag:, source:, destination:, model:).")
@click.option("--exclude", "excludes", multiple=True, metavar="S", help="Leave out what this selector selects.")
@click.option("--limit", default=10, show_default=True, help="Sample rows (and calls per destination) to show.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def preview(obj: Context, name: str | None, selectors: tuple[str, ...], excludes: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Run NAME's SQL (or each selected trait's), validate it, show sample rows and what a run would send now.

    The whole query runs (so the counts are exact) and nothing is sent or recorded.
    """
    config = obj.config()
    if name is None and not selectors:
        raise click.UsageError("name the trait to preview, or select traits with --select")
    if name is not None and not selectors and not excludes:
        check_trait(config, name)
        code, data = _preview(obj, config, name, limit, as_json)
        if as_json:
            emit_json(data)
        raise SystemExit(int(code))
    names = select(config, [*([name] if name else []), *selectors], excludes)
    code = ExitCode.OK
    previews = []
    for each in names:
        one, data = _preview(obj, config, each, limit, as_json)
        code = max(code, one)
        previews.append(data)
    if as_json:
        emit_json({"ok": code == ExitCode.OK, "exit_code": int(code), "previews": previews})
    raise SystemExit(int(code))


def _preview(obj: Context, config: Config, name: str, limit: int, as_json: bool) -> tuple[ExitCode, dict[str, Any]]:
    """Preview one trait: print it (unless ``as_json``) and return its exit code and JSON."""
    state = obj.state(config)
    try:
        with TerminalProgress(name, enabled=None if not as_json else False) as progress:
            result = run_trait(config, state, name, RunOptions(dry_run=True, sample_calls=limit, sample_rows=limit), progress)
        record = result.record
        known, basis = _known_ids(config, state, name, [str(r["id"]) for r in result.rows]) if result.rows else (set(), "")
    finally:
        state.close()
    keys = list(dict.fromkeys(k for r in result.rows for k in r["traits"]))
    warnings = reserved_warnings(config, name, keys)
    rules = _rules(config, name)
    data = {
        "ok": result.exit_code == ExitCode.OK, "exit_code": int(result.exit_code), "trait": name,
        "valid": record.status not in ("invalid", "failed"), "status": record.status if record.status != "running" else "ok",
        "error": record.error, "rows": record.rows, "known_by": basis, "warnings": warnings, "rules": rules,
        "sample": [{**r, "known": str(r["id"]) in known} for r in result.rows],
        "destinations": {d: {"added": c.added, "changed": c.changed, "exited": c.exited, "unchanged": c.unchanged,
                             "pending_exit": c.pending_exit, "pending": c.pending}
                         for d, c in record.destinations.items()},
        "calls": result.calls,
    }
    if as_json:
        if record.error:
            error_line(prefixed(f"trait {name}", record.error))
        return result.exit_code, data
    if record.error:
        stdout.print(f"[red]✗[/] [bold]{escape(name)}[/]: the result is not valid, a run would send nothing", markup=True)
        error_line(prefixed(f"trait {name}", record.error))
        return result.exit_code, data
    _print_sample(name, record.rows, result.rows, known, basis)
    for line in rules:
        stdout.print(f"[dim]{escape(line)}[/]", markup=True)
    for warning in warnings:
        stdout.print(f"[yellow]⚠[/] {escape(warning)}", markup=True)
    _print_plan(record.destinations, config.traits[name].destinations)
    if result.calls:
        for destination, calls in result.calls.items():
            if calls:
                stdout.print(f"[dim]first {len(calls)} call(s) to {escape(destination)}:[/]", markup=True)
                for call in calls[:3]:
                    stdout.print("  " + escape(json.dumps(call, ensure_ascii=False)), markup=True)
    return result.exit_code, data


def _print_sample(name: str, rows: int, sample: list[dict[str, Any]], known: set[str], basis: str) -> None:
    stdout.print(f"[green]✓[/] [bold]{escape(name)}[/]: {rows:,} rows, valid", markup=True)
    if not sample:
        return
    keys = list(dict.fromkeys(k for r in sample for k in r["traits"]))
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    table.add_column("")
    table.add_column("id")
    if any(r.get("user_id") for r in sample):
        table.add_column("user_id")
    for key in keys:
        table.add_column(key)
    for r in sample:
        cells = ["[green]✓[/]" if str(r["id"]) in known else "[yellow]?[/]", escape(str(r["id"]))]
        if any(x.get("user_id") for x in sample):
            cells.append(escape(str(r.get("user_id") or "")))
        cells.extend(escape(json.dumps(r["traits"].get(k), ensure_ascii=False)) for k in keys)
        table.add_row(*cells)
    stdout.print(table)
    if basis:
        stdout.print(f"[dim]✓ known / ? unknown id, by {escape(basis)}[/]", markup=True)


def _print_plan(counts: dict[str, Any], destinations: list[str]) -> None:
    if not destinations:
        stdout.print("no destinations: a run computes and validates only")
        return
    stdout.print("a run now would send:")
    for destination in destinations:
        c = counts.get(destination)
        if c is None:
            continue
        pending = f" · {c.pending_exit:,} pending exit" if c.pending_exit else ""
        stdout.print(
            f"  → {escape(destination)}: +{c.added:,} added · {c.changed:,} changed · {c.exited:,} exited{pending} "
            f"· {c.unchanged:,} unchanged"
        )
        for held in c.pending:
            missing = f"missing {held['missing_runs']} run(s), exits {held['exits']}"
            stdout.print(f"      [dim]pending exit[/] {escape(str(held['id']))}: {escape(missing)}", markup=True)
        if c.pending_exit > len(c.pending):
            stdout.print(f"      [dim]… and {c.pending_exit - len(c.pending):,} more pending exit(s)[/]", markup=True)


def _rules(config: Config, name: str) -> list[str]:
    """What the trait's exit and guard options do, in words."""
    trait = config.traits[name]
    policy = ExitPolicy.of(trait.on_exit)
    if policy.sends_nothing:
        lines = ["an exit sends no call (on_exit: keep); the id leaves the snapshot"]
    else:
        default = "kept out of the call" if policy.default is None else policy.default
        columns = ", ".join(f"{k} → {'kept' if v is None else v}" for k, v in policy.columns.items())
        lines = [f"an exit sends: {columns + '; ' if columns else ''}{'every other' if columns else 'every'} column {default}"
                 + (" (no call when nothing is left)" if policy.columns else "")]
    if trait.exit_after is not None:
        lines.append(f"an id exits once missing for {trait.exit_after}; until then it is pending and nothing is sent")
    guards = [f"max_exit_ratio {trait.max_exit_ratio:.0%}"]
    if trait.max_change_ratio is not None:
        guards.append(f"max_change_ratio {trait.max_change_ratio:.0%}")
    if trait.min_known_ratio is not None:
        identity = identity_for(config, name)
        by = f"{identity.table}.{identity.column}" if identity else "the ids already synced"
        guards.append(f"min_known_ratio {trait.min_known_ratio:.0%} (known by {by})")
    lines.append("guards: " + ", ".join(guards))
    return lines


def _known_ids(config: Config, state: StateStore, name: str, ids: list[str]) -> tuple[set[str], str]:
    """Which sample ids are known: by the source's identity table, else by the snapshots."""
    trait = config.traits[name]
    source = config.sources[trait.source]
    identity = identity_for(config, name)
    if identity is not None:
        with open_warehouse(trait.source, source, config.directory) as warehouse:
            found = warehouse.known_ids(identity.table, identity.column, ids)
        return found, f"{identity.table}.{identity.column}"
    snapshots = [s for d in trait.destinations if (s := state.snapshot(name, d))]
    if not snapshots:
        return set(), "ids already synced (none yet)"
    con = columnar.connect()
    try:
        found = set()
        for snapshot in snapshots:
            placeholders = ", ".join("?" for _ in ids)
            rows = con.execute(f"select id from ({snapshot.rows(con, 'id, exited')}) where id in ({placeholders})", ids).fetchall()
            found.update(str(r[0]) for r in rows)
    finally:
        con.close()
    return found, "ids already synced"
