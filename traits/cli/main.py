"""The ``traits`` command. Exit codes are mapped in one place: ``main``."""

from __future__ import annotations

import sys
import traceback
from typing import Any

import click

import traits.cli.arrow_pool  # noqa: F401 - before pyarrow is imported
from traits import __version__
from traits.cli.context import Context, make_context
from traits.cli.output import emit_json, error_line
from traits.config import config_directory
from traits.config.env import redact
from traits.errors import ExitCode, TraitsError, exit_code_for


class TraitsGroup(click.Group):
    """Turns every error into one line on stderr and its documented exit code.

    Every subcommand also takes ``--config`` and ``--debug`` (after the command, as dbt does),
    which override the same options given before it.
    """

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params.extend(shared_options())
        super().add_command(cmd, name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["traits.argv"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TraitsError as e:
            _report(ctx, str(e), exit_code_for(e))
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as e:  # noqa: BLE001 - the one place unexpected errors become a line
            debug = bool(ctx.find_root().params.get("debug"))
            if debug:
                traceback.print_exc()
            _report(ctx, f"internal error: {type(e).__name__}: {e} (run with --debug for the trace)", exit_code_for(e))
        return None


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(Context).config_dir = config_directory(value)


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        from traits.cli.logging_setup import configure

        ctx.ensure_object(Context).debug = True
        ctx.find_root().params["debug"] = True
        configure(True, daemon=ctx.info_name == "daemon")


def shared_options() -> list[click.Parameter]:
    return [
        click.Option(["--config", "config_dir"], metavar="DIR", expose_value=False, is_eager=True, callback=_set_config,
                     help="Config directory (default ./config, or TRAITS_CONFIG)."),
        click.Option(["--debug"], is_flag=True, expose_value=False, is_eager=True, callback=_set_debug, help="Show stack traces and debug logs."),
    ]


def _report(ctx: click.Context, message: str, code: ExitCode) -> None:
    error_line(message)
    if "--json" in ctx.meta.get("traits.argv", []):
        emit_json({"ok": False, "error": redact(message), "exit_code": int(code), "command": ctx.invoked_subcommand})
    ctx.exit(int(code))


@click.group(cls=TraitsGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_dir", envvar="TRAITS_CONFIG", metavar="DIR", help="Config directory (default ./config, or TRAITS_CONFIG).")
@click.option("--debug", is_flag=True, help="Show stack traces and debug logs.")
@click.version_option(__version__, prog_name="sql-traits")
@click.pass_context
def cli(ctx: click.Context, config_dir: str | None, debug: bool) -> None:
    """sql-traits: run SQL on your warehouse and send only what changed.

    \b
    Exit codes:
      0  ok
      1  the result failed validation, the guard stopped it, or the trait is busy
      2  config or usage error
      3  warehouse error (connect, credentials, permission, SQL, timeout)
      4  delivery failed: some calls were not acknowledged
      5  state store error: nothing was committed, the run resumes next time
    """
    from traits.cli.logging_setup import configure

    configure(debug, daemon=ctx.invoked_subcommand == "daemon")
    ctx.obj = make_context(config_dir, debug)


def _register() -> None:
    from traits.cli import cmd_console, cmd_demo, cmd_inspect, cmd_ls, cmd_preview, cmd_revert, cmd_run, cmd_validate

    cli.add_command(cmd_validate.validate)
    cli.add_command(cmd_preview.preview)
    cli.add_command(cmd_run.run)
    cli.add_command(cmd_inspect.history)
    cli.add_command(cmd_inspect.status)
    cli.add_command(cmd_inspect.reset)
    cli.add_command(cmd_inspect.daemon)
    cli.add_command(cmd_demo.demo)
    cli.add_command(cmd_ls.ls)
    cli.add_command(cmd_console.console)
    cli.add_command(cmd_console.explain)
    cli.add_command(cmd_revert.revert)


_register()


def main() -> None:
    try:
        cli.main(prog_name="traits", standalone_mode=True)
    except KeyboardInterrupt:
        error_line("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
