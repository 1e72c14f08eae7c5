"""Output for the command line: data to stdout (text or JSON), logs, errors and progress to stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from traits.config.env import redact

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


class _LazyConsole:
    """A rich ``Console`` made when first used: a run that prints nothing through rich (``--json``,
    or piped) never imports it (~2 MB a process holds)."""

    def __init__(self, make: Callable[[], Console]) -> None:
        self._make = make
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            self._console = self._make()
        return getattr(self._console, name)


def _stdout() -> Console:
    from rich.console import Console

    # piped output is not cut to 80 columns
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


stdout: Any = _LazyConsole(_stdout)
stderr: Any = _LazyConsole(_stderr)
#: what makes rich call an output a terminal though it is no TTY (``Console.is_terminal``)
_TERMINAL_OVERRIDES = ("FORCE_TERMINAL", "TTY_COMPATIBLE", "FORCE_COLOR", "TTY_INTERACTIVE")


def emit_json(data: Any) -> None:
    # values are redacted before they are serialised: the JSON always parses
    text = json.dumps(redact.data(data), indent=2, default=lambda o: redact(str(o)), ensure_ascii=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def error_line(message: str) -> None:
    """One line on stderr: the message's own newlines are folded, and its brackets kept."""
    stderr.print(f"[bold red]error:[/] {escape(' '.join(message.split()))}", markup=True, highlight=False)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(redact(text))


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed (at the end of a pytest run)
        return False


class TerminalProgress:
    """A progress bar on stderr while a run queries and delivers; silent when stderr is no terminal."""

    def __init__(self, label: str, enabled: bool | None = None) -> None:
        if enabled is None:
            # a stderr that is no TTY is no terminal to rich either, unless the environment says so
            plain = not _isatty(sys.stderr) and not any(k in os.environ for k in _TERMINAL_OVERRIDES)
            enabled = False if plain else bool(stderr.is_terminal)
        self.enabled = enabled
        self.label = label
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> TerminalProgress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=stderr, transient=True,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def phase(self, name: str, total: int | None = None) -> None:
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(f"{self.label}: {name}", total=total)

    def advance(self, amount: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, amount)
