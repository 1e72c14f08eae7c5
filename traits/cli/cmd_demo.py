"""``traits demo``: make (or change) the demo warehouse the demo config reads."""

from __future__ import annotations

import click

from traits.cli.context import Context
from traits.cli.output import emit_json, escape, stdout
from traits.config.models import DuckDBSource
from traits.errors import ConfigError


@click.command()
@click.option("--users", default=1_000, show_default=True, help="How many users to generate.")
@click.option("--mutate", is_flag=True, help="Change a few rows of the existing warehouse instead.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def demo(obj: Context, users: int, mutate: bool, as_json: bool) -> None:
    """Generate the demo DuckDB warehouse of the config's duckdb source."""
    from traits import demo as demo_data

    config = obj.config()
    sources = [s for s in config.sources.values() if isinstance(s, DuckDBSource)]
    if not sources:
        raise ConfigError(f"{config.directory}: no duckdb source to generate", hint="the demo config in config/ has one")
    path = config.resolve(sources[0].path)
    if mutate:
        if not path.exists():
            raise ConfigError(f"{path} does not exist yet", hint="run `traits demo` first")
        demo_data.mutate(path)
        if as_json:
            emit_json({"ok": True, "warehouse": str(path), "mutated": True})
        else:
            stdout.print(f"changed a few rows in {escape(str(path))}: `traits run --all` sends just those")
        return
    demo_data.generate(path, users=users)
    if as_json:
        emit_json({"ok": True, "warehouse": str(path), "users": users})
    else:
        stdout.print(f"made the demo warehouse {escape(str(path))} ({users:,} users): now run `traits run --all`")
