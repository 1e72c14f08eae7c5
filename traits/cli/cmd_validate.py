"""``traits validate``: check the config, and with ``--connect`` every source and destination."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from traits.cli.context import Context
from traits.cli.output import emit_json, error_line, escape, stdout
from traits.config import Config
from traits.config.env import redact
from traits.destinations import open_destination
from traits.errors import ExitCode, TraitsError, prefixed
from traits.warehouses import open_warehouse


@click.command()
@click.option("--connect", is_flag=True, help="Also connect to each source and destination and check access.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def validate(obj: Context, connect: bool, as_json: bool) -> None:
    """Check the config (and with --connect, access to every source and destination)."""
    config = obj.config()
    warnings = _key_warnings(obj, config)
    checks: list[dict[str, Any]] = []
    code = ExitCode.OK
    if connect:
        for name, source in config.sources.items():
            checks.append(_check_source(config, name, source))
        for name, destination in config.destinations.items():
            checks.append(_check_destination(config, name, destination))
        for check in checks:
            if not check["ok"]:
                code = max(code, ExitCode(check["exit_code"]))
    summary = {
        "sources": sorted(config.sources), "destinations": sorted(config.destinations),
        "traits": {n: {"kind": t.kind, "source": t.source, "destinations": t.destinations, "schedule": str(t.schedule), "enabled": t.enabled}
                   for n, t in config.traits.items()},
    }
    if as_json:
        emit_json({
            "ok": code == ExitCode.OK, "exit_code": int(code), "config": str(config.directory), **summary, "checks": checks,
            "warnings": warnings,
        })
    else:
        stdout.print(
            f"[green]✓[/] config {escape(str(config.directory))}: {len(config.sources)} source(s), "
            f"{len(config.destinations)} destination(s), {len(config.traits)} trait(s)", markup=True,
        )
        for name, trait in config.traits.items():
            targets = ", ".join(trait.destinations) or "(compute only)"
            stdout.print(f"  {escape(name)}: {trait.kind} trait from {escape(trait.source)} → {escape(targets)}, {trait.schedule}")
        for warning in warnings:
            stdout.print(f"[yellow]⚠[/] {escape(warning)}", markup=True)
        for check in checks:
            mark = "[green]✓[/]" if check["ok"] else "[red]✗[/]"
            stdout.print(f"{mark} {check['kind']} {escape(check['name'])}", markup=True)
            for line in check["details"]:
                stdout.print(f"    {escape(line)}")
            if not check["ok"]:
                error_line(prefixed(f"{check['kind']} {check['name']}", check["error"]))
    raise SystemExit(int(code))


def _key_warnings(obj: Context, config: Config) -> list[str]:
    """Check the trait keys past runs recorded (collisions are errors); returns the warnings."""
    from traits.errors import StateError
    from traits.pipeline.trait_keys import check_stored_keys

    try:
        state = obj.state(config)
    except StateError as e:
        return [f"trait keys not checked: {redact(str(e))}"]
    try:
        return check_stored_keys(config, state)
    finally:
        state.close()


def _check_source(config: Config, name: str, source: Any) -> dict[str, Any]:
    try:
        with open_warehouse(name, source, config.directory) as warehouse:
            details = warehouse.check()
        if source.diff == "warehouse" or any(t.source == name and config.diff_mode(n) == "warehouse" for n, t in config.traits.items()):
            from traits.bookkeeping.grants import check_bookkeeping

            details += check_bookkeeping(name, source, config.directory)
        return {"kind": "source", "name": name, "ok": True, "details": details}
    except TraitsError as e:
        return {"kind": "source", "name": name, "ok": False, "details": [], "error": redact(str(e)), "exit_code": int(e.exit_code)}


def _check_destination(config: Config, name: str, destination: Any) -> dict[str, Any]:
    async def check() -> str:
        dest = open_destination(name, destination, config_dir=config.directory)
        try:
            return await dest.check()
        finally:
            await dest.aclose()

    try:
        return {"kind": "destination", "name": name, "ok": True, "details": [asyncio.run(check())]}
    except TraitsError as e:
        code = e.exit_code if e.exit_code != ExitCode.INVALID else ExitCode.DELIVERY
        return {"kind": "destination", "name": name, "ok": False, "details": [], "error": redact(str(e)), "exit_code": int(code)}
