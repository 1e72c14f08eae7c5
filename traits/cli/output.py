"""Output for the command line: data to stdout (text or JSON), logs, errors and progress to stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from traits.config.env import redact

#: piped output is not cut to 80 columns
stdout = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


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


class TerminalProgress:
    """A progress bar on stderr while a run queries and delivers; silent when stderr is no terminal."""

    def __init__(self, label: str, enabled: bool | None = None) -> None:
        self.enabled = stderr.is_terminal if enabled is None else enabled
        self.label = label
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> TerminalProgress:
        if self.enabled:
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
