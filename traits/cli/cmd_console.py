"""``traits console`` (the web console without a daemon) and ``traits explain`` (a profile in the terminal)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import click

from traits.cli.context import Context, check_trait
from traits.cli.output import emit_json, escape, stdout
from traits.config import Config, load_config

log = logging.getLogger("traits.console")


class ReloadingConfig:
    """The config, loaded again when a YAML file in its directory changes (the console runs for days)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._stamp: tuple[tuple[str, float], ...] = ()
        self._config: Config | None = None

    def _files(self) -> tuple[tuple[str, float], ...]:
        files = sorted([*self.directory.glob("*.yml"), *self.directory.glob("*.yaml")])
        return tuple((f.name, f.stat().st_mtime) for f in files if f.exists())

    def __call__(self) -> Config:
        stamp = self._files()
        if self._config is None or stamp != self._stamp:
            self._config = load_config(self.directory)
            self._stamp = stamp
        return self._config


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve the console on.")
@click.option("--port", default=9465, show_default=True, type=int, help="Port to serve the console on.")
@click.pass_obj
def console(obj: Context, host: str, port: int) -> None:
    """Serve the read-only web console (for a machine that runs no daemon).

    Bound beyond loopback it needs TRAITS_CONSOLE_TOKEN, or TRAITS_CONSOLE_USER and
    TRAITS_CONSOLE_PASSWORD, in the environment.
    """
    from traits.console.serve import AppServer, console_app
    from traits.logs import setup_logging

    setup_logging(level="DEBUG" if obj.debug else os.environ.get("TRAITS_LOG_LEVEL", "INFO"))
    config = ReloadingConfig(Path(obj.config_dir))
    config()  # a broken config fails now, with its file:line
    server = AppServer(console_app(config, host), host, port)
    log.info("console serving http://%s/", server.address)
    server.serve_forever()


@click.command()
@click.argument("identity", metavar="ID")
@click.option("--trait", "trait", help="Only this trait.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def explain(obj: Context, identity: str, trait: str | None, as_json: bool) -> None:
    """What ID (a user_id or group_id) holds: per trait and destination, the values last
    acknowledged, when, by which run, and whether it exited."""
    from traits.console.views import Console, profile

    config = obj.config()
    if trait is not None:
        check_trait(config, trait)
    data = profile(Console(lambda: config), identity, trait)
    if as_json:
        emit_json({"ok": True, **data})
        return
    stdout.print(f"[bold]{escape(identity)}[/]: held by {len(data['entries'])} trait/destination pair(s)")
    for entry in data["entries"]:
        _print_entry(entry)


def _print_entry(entry: dict[str, Any]) -> None:
    state = "[yellow]exited[/] (its traits were sent as null)" if entry["exited"] else "[green]held[/]"
    stdout.print()
    stdout.print(f"[bold]{escape(entry['trait'])}[/] → {escape(entry['destination'])}: {state}")
    from rich.table import Table

    table = Table(show_edge=False, show_header=False, pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    values = entry["values_before_exit"] if entry["exited"] else entry["values"]
    for key, value in values.items():
        table.add_row(escape(key), escape(json.dumps(value, ensure_ascii=False)))
    if entry["user_id"]:
        table.add_row("userId", escape(json.dumps(entry["user_id"])))
    stdout.print(table)
    when = (entry["at"] or "?").replace("T", " ")[:19]
    stdout.print(f"  [dim]acknowledged {when} by run {escape(entry['run_id'] or '(unknown)')}; in the last run: {escape(entry['status_in_last_run'])}[/]")
