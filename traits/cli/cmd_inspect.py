"""``traits history``, ``traits status``, ``traits reset`` and ``traits daemon``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from traits.cli.context import Context, check_trait
from traits.cli.output import emit_json, escape, stdout
from traits.config import Config
from traits.errors import ConfigError
from traits.state.base import StateStore
from traits.state.records import health

_STYLE = {"ok": "green", "partial": "yellow", "guarded": "yellow", "invalid": "red", "failed": "red", "running": "cyan", "interrupted": "magenta"}


@click.command()
@click.argument("name", required=False)
@click.option("--limit", default=20, show_default=True, help="How many runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--chart", "as_chart", is_flag=True, help="Draw the runs as a small terminal chart (oldest left).")
@click.pass_obj
def history(obj: Context, name: str | None, limit: int, as_json: bool, as_chart: bool) -> None:
    """Past runs, newest first (of NAME, or of every trait)."""
    config = obj.config()
    if name:
        check_trait(config, name)
    state = obj.state(config)
    try:
        runs = state.runs(name, limit)
    finally:
        state.close()
    if as_json:
        emit_json({"ok": True, "runs": [r.to_dict() for r in runs]})
        return
    if not runs:
        stdout.print("no runs yet: try `traits run --all`")
        return
    if as_chart:
        from traits.cli.history_chart import chart

        stdout.print(chart(runs, name))
        return
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    numbers = ("rows", "fetched", "added", "changed", "exited", "sent", "failed", "time")
    for column in ("started", "trait", "status", "rows", "fetched", "added", "changed", "exited", "sent", "failed", "time", "run_id"):
        table.add_column(column, justify="right" if column in numbers else "left")
    for r in runs:
        style = _STYLE.get(r.status, "")
        table.add_row(
            r.started_at.replace("T", " ")[:19], escape(r.trait), f"[{style}]{r.status}[/]", f"{r.rows:,}", f"{r.rows_fetched:,}", f"{r.added:,}",
            f"{r.changed:,}", f"{r.exited:,}", f"{r.sent:,}", f"{r.failed:,}", f"{r.duration or 0:.1f}s", r.run_id,
        )
    stdout.print(table)
    for r in runs:
        if r.dry_run:
            stdout.print(f"[dim]{r.run_id}[/] a dry run, kept with the calls it would send: nothing was sent", markup=True)
        if r.reverts:
            stdout.print(f"[dim]{r.run_id}[/] reverted run {escape(r.reverts)}" + (" (kept the ids it added)" if r.keep_added else ""), markup=True)
        if r.error:
            stdout.print(f"[dim]{r.run_id}[/] [red]{escape(r.error)}[/]", markup=True)


def _next_runs(config: Config, state: StateStore) -> dict[str, Any]:
    try:
        from traits.scheduler.schedule import next_run_times
    except ImportError:
        return {}
    try:
        return dict(next_run_times(config, state))
    except Exception:  # noqa: BLE001 - status shows what it can
        return {}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(obj: Context, as_json: bool) -> None:
    """Each trait: schedule, last run, next run and health."""
    config = obj.config()
    state = obj.state(config)
    rows: list[dict[str, Any]] = []
    try:
        upcoming = _next_runs(config, state)
        for name, trait in config.traits.items():
            runs = [r for r in state.runs(name, 5) if r.status != "running"]
            holder = state.lock_holder(name)
            last = runs[0] if runs else None
            last_ok = next((r for r in state.runs(name, 50) if r.status == "ok"), None)
            next_run = upcoming.get(name)
            rows.append({
                "trait": name, "kind": trait.kind, "enabled": trait.enabled, "schedule": str(trait.schedule),
                "destinations": trait.destinations, "health": health(last, holder is not None), "running_by": holder,
                "last_run": last.to_dict() if last else None,
                "last_success": last_ok.finished_at if last_ok else None,
                "next_run": next_run.isoformat() if isinstance(next_run, datetime) else next_run,
            })
    finally:
        state.close()
    if as_json:
        emit_json({"ok": True, "traits": rows})
        return
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for column in ("trait", "schedule", "health", "last run", "result", "next run"):
        table.add_column(column)
    for row in rows:
        last = row["last_run"]
        result = f"{last['status']}: {last['sent']:,} sent, {last['failed']:,} failed" if last else "-"
        color = {"healthy": "green", "degraded": "yellow", "failing": "red", "running": "cyan"}.get(row["health"], "dim")
        table.add_row(
            escape(row["trait"]), escape(row["schedule"] + ("" if row["enabled"] else " (disabled)")), f"[{color}]{row['health']}[/]",
            (last["finished_at"] or "")[:19].replace("T", " ") if last else "never", escape(result),
            (row["next_run"] or "-")[:19].replace("T", " ") if row["next_run"] else ("manual" if row["schedule"] == "manual" else "-"),
        )
    stdout.print(table)


@click.command()
@click.argument("name")
@click.option("--destination", "-d", "destination", help="Only this destination's snapshot.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def reset(obj: Context, name: str, destination: str | None, as_json: bool) -> None:
    """Forget NAME's snapshots so the next run sends every row again."""
    config = obj.config()
    check_trait(config, name)
    if destination is not None and destination not in config.traits[name].destinations and destination not in config.destinations:
        raise ConfigError(f"unknown destination {destination!r} for trait {name} (it sends to: {', '.join(config.traits[name].destinations) or 'none'})")
    state = obj.state(config)
    try:
        from traits.pipeline.run import default_owner

        with state.lock(name, default_owner() + " (reset)"):
            done = state.reset(name, destination)
    finally:
        state.close()
    if as_json:
        emit_json({"ok": True, "trait": name, "reset": done})
        return
    if done:
        stdout.print(f"forgot {escape(name)}'s snapshot for {escape(', '.join(done))}: the next run sends every row")
    else:
        stdout.print(f"{escape(name)} had no snapshot to forget")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address for /healthz, /metrics and the console.")
@click.option("--port", default=9465, show_default=True, type=int, help="Port for /healthz, /metrics and the console.")
@click.pass_obj
def daemon(obj: Context, host: str, port: int) -> None:
    """Run every enabled trait on its schedule; serve /healthz, /metrics and the read-only console."""
    from traits.scheduler.daemon import run_daemon

    raise SystemExit(run_daemon(Path(obj.config_dir), host, port))
