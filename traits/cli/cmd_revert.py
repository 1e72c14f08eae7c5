"""``traits revert``: undo what one run sent, as a new run."""

from __future__ import annotations

import json

import click

from traits.cli.context import Context
from traits.cli.output import emit_json, error_line, escape, stdout
from traits.errors import ExitCode, prefixed
from traits.pipeline.revert import RevertOptions, revert_run


@click.command()
@click.argument("run_id")
@click.option("--destination", "-d", "destinations", multiple=True, help="Only this destination (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show what the revert would send; send nothing.")
@click.option("--keep-added", is_flag=True, help="Leave the ids the run added (default: clear their traits).")
@click.option("--force", is_flag=True, help="Revert ids a later run changed again, too.")
@click.option("--limit", default=5, show_default=True, help="Calls per destination a dry run shows.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def revert(obj: Context, run_id: str, destinations: tuple[str, ...], dry_run: bool, keep_added: bool, force: bool, limit: int, as_json: bool) -> None:
    """Send the values the snapshot held before RUN_ID, for every id that run changed, added or exited.

    It runs as a new run (its own run_id and history record) through the normal delivery:
    retried, acknowledged, resumed if killed. Refused, naming the ids, when a later run has
    changed the same ids again, unless --force.
    """
    config = obj.config()
    state = obj.state(config)
    options = RevertOptions(destinations=list(destinations) or None, dry_run=dry_run, keep_added=keep_added, force=force, sample_calls=limit)
    try:
        result = revert_run(config, state, run_id, options)
    finally:
        state.close()
    r = result.record
    if as_json:
        data = r.to_dict()
        data["exit_code"] = int(result.exit_code)
        if dry_run:
            data["calls"] = result.calls
        emit_json({"ok": result.exit_code == ExitCode.OK, "exit_code": int(result.exit_code), "dry_run": dry_run, "runs": [data]})
        if r.error:
            error_line(prefixed(f"trait {r.trait}", r.error))
        raise SystemExit(int(result.exit_code))
    mark = "[green]✓[/]" if r.status == "ok" else "[red]✗[/]"
    what = "would revert" if dry_run else "reverted"
    stdout.print(
        f"{mark} [bold]{escape(r.trait)}[/] {what} run {escape(run_id)}: {r.changed:,} changed back · {r.added:,} added back · "
        f"{r.exited:,} cleared" + ("  [dim](dry run: nothing sent)[/]" if dry_run else f"  [dim]as run {escape(r.run_id)}[/]"),
        markup=True,
    )
    for name, c in r.destinations.items():
        line = f"    → {escape(name)}: ~{c.changed:,} +{c.added:,} -{c.exited:,}"
        if not dry_run:
            line += f" · {c.sent:,} sent" + (f" · [red]{c.failed:,} failed[/]" if c.failed else "")
        stdout.print(line, markup=True)
    for destination, calls in result.calls.items():
        if calls:
            stdout.print(f"    [dim]first {len(calls)} call(s) to {escape(destination)}:[/]", markup=True)
            for call in calls:
                stdout.print("      " + escape(json.dumps(call, ensure_ascii=False)), markup=True)
    if r.error:
        error_line(prefixed(f"trait {r.trait}", r.error))
    raise SystemExit(int(result.exit_code))
