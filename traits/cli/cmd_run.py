"""``traits run``: run traits now."""

from __future__ import annotations

from typing import Any

import click

from traits.cli.context import Context, check_trait
from traits.cli.output import TerminalProgress, emit_json, error_line, escape, stdout
from traits.config.env import redact
from traits.config.selectors import select
from traits.errors import ExitCode, TraitsError, exit_code_for, prefixed
from traits.pipeline.if_changed import Decision, decide, remember
from traits.pipeline.run import RunOptions, RunResult, run_trait

_MARK = {
    "ok": "[green]✓[/]", "interrupted": "[magenta]⏸[/]", "partial": "[yellow]◐[/]", "guarded": "[yellow]⚠[/]",
    "invalid": "[red]✗[/]", "failed": "[red]✗[/]",
}


@click.command()
@click.argument("names", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="Run every enabled trait.")
@click.option("--select", "-s", "selectors", multiple=True, metavar="S",
              help="dbt-like selector: names, globs, tag:, source:, destination:, model:; space = union, comma = intersection.")
@click.option("--exclude", "excludes", multiple=True, metavar="S", help="Leave out what this selector selects.")
@click.option("--if-changed", is_flag=True, help="Run a dbt-model trait only when dbt rebuilt its model since the trait last ran.")
@click.option("--dry-run", is_flag=True, help="Stop after the diff and show the calls it would send.")
@click.option("--record", "record_dry_run", is_flag=True, help="With --dry-run: keep it in history with the calls it would send (see the console).")
@click.option("--force", is_flag=True, help="Send even when the blast-radius guard would stop the run.")
@click.option("--full-resync", is_flag=True, help="Send every row again, changed or not.")
@click.option("--limit", default=5, show_default=True, help="Calls per destination a dry run shows.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def run(obj: Context, names: tuple[str, ...], run_all: bool, selectors: tuple[str, ...], excludes: tuple[str, ...], if_changed: bool,
        dry_run: bool, record_dry_run: bool, force: bool, full_resync: bool, limit: int, as_json: bool) -> None:
    """Run traits now: query, validate, diff, deliver, commit.

    Name the traits, select them (`--select tag:after_dbt`), or pass --all.
    """
    config = obj.config()
    if run_all and (names or selectors):
        raise click.UsageError("name or select traits, or pass --all, not both")
    if not run_all and not names and not selectors:
        raise click.UsageError("name the traits to run, select them with --select, or pass --all")
    if record_dry_run and not dry_run:
        raise click.UsageError("--record keeps a dry run in history: pass it with --dry-run")
    if names and not selectors and not excludes:
        selected = list(dict.fromkeys(names))
        for name in selected:
            check_trait(config, name)
    else:
        selected = select(config, [*names, *selectors], excludes)
    state = obj.state(config)
    results: list[dict[str, Any]] = []
    code = ExitCode.OK
    try:
        for name in selected:
            # a model trait's run remembers the dbt build it read, so a later --if-changed can skip
            decision = decide(config, state, name) if config.traits[name].model else Decision(None)
            if if_changed and decision.skip is not None:
                results.append({"trait": name, "status": "skipped", "reason": decision.skip, "exit_code": 0})
                if not as_json:
                    stdout.print(f"[dim]–[/] [bold]{escape(name)}[/]  skipped: {escape(decision.skip)}", markup=True)
                continue
            options = RunOptions(dry_run=dry_run, record_dry_run=record_dry_run, force=force, full_resync=full_resync, sample_calls=limit)
            try:
                with TerminalProgress(name, enabled=None if not as_json else False) as progress:
                    result = run_trait(config, state, name, options, progress)
            except TraitsError as e:  # the trait could not start (busy, state): others still run
                code = max(code, exit_code_for(e))
                error_line(str(e))
                results.append({"trait": name, "status": "skipped", "error": redact(str(e)), "exit_code": int(exit_code_for(e))})
                continue
            except Exception as e:  # noqa: BLE001 - one trait's failure never stops another
                code = max(code, exit_code_for(e))
                error_line(f"trait {name}: {type(e).__name__}: {e}")
                results.append({"trait": name, "status": "failed", "error": redact(str(e)), "exit_code": int(exit_code_for(e))})
                continue
            code = max(code, result.exit_code)
            if not dry_run and result.record.status == "ok":
                remember(state, name, decision)
            if result.resumed is not None:
                results.append(_as_dict(result.resumed, dry_run))
                if not as_json:
                    stdout.print(f"[dim]finished the interrupted run {result.resumed.record.run_id} first:[/]", markup=True)
                    _print(result.resumed, dry_run)
            results.append(_as_dict(result, dry_run))
            if not as_json:
                _print(result, dry_run)
            elif result.record.error:
                error_line(prefixed(f"trait {name}", result.record.error))
    finally:
        state.close()
    if as_json:
        emit_json({"ok": code == ExitCode.OK, "exit_code": int(code), "dry_run": dry_run, "runs": results})
    raise SystemExit(int(code))


def _as_dict(result: RunResult, dry_run: bool) -> dict[str, Any]:
    data = result.record.to_dict()
    data["exit_code"] = int(result.exit_code)
    if dry_run:
        data["calls"] = result.calls
    return data


def _print(result: RunResult, dry_run: bool) -> None:
    r = result.record
    mark = _MARK.get(r.status, "•")
    title = f"{mark} [bold]{escape(r.trait)}[/]"
    if r.status in ("invalid", "guarded", "failed") and not r.destinations:
        error_line(prefixed(f"trait {r.trait}", r.error or r.status))
        stdout.print(f"{title}  {r.status}", markup=True)
        return
    stdout.print(
        f"{title}  {r.rows:,} rows · +{r.added:,} added · {r.changed:,} changed · {r.exited:,} exited · "
        f"{r.unchanged:,} unchanged · {r.rows_fetched:,} fetched"
        + ("  [dim](dry run: nothing sent)[/]" if dry_run else f"  [dim]{r.duration or 0:.1f}s[/]"),
        markup=True,
    )
    for name, c in r.destinations.items():
        line = f"    → {escape(name)}: +{c.added:,} ~{c.changed:,} -{c.exited:,}" + (f" · {c.pending_exit:,} pending exit" if c.pending_exit else "")
        if not dry_run:
            line += f" · {c.sent:,} sent" + (f" · [red]{c.failed:,} failed[/]" if c.failed else "")
        if c.error:
            line += f" · [red]{escape(c.error)}[/]"
        stdout.print(line, markup=True)
        for rejection in c.rejections[:3]:
            stdout.print(f"      [red]rejected[/] {escape(rejection['id'])}: {escape(rejection['reason'])}", markup=True)
    if r.status in ("invalid", "guarded", "failed", "interrupted") and r.error:
        error_line(prefixed(f"trait {r.trait}", r.error))
    if dry_run:
        _print_calls(result)


def _print_calls(result: RunResult) -> None:
    import json

    for destination, calls in result.calls.items():
        if not calls:
            continue
        stdout.print(f"    [dim]first {len(calls)} call(s) to {escape(destination)}:[/]", markup=True)
        for call in calls:
            stdout.print("      " + escape(json.dumps(call, ensure_ascii=False)), markup=True)


