"""Logging for commands: quiet by default (warnings), JSON lines or text from ``traits.logs``."""

from __future__ import annotations

import logging


def configure(debug: bool, *, daemon: bool = False) -> None:
    level = "DEBUG" if debug else "WARNING"
    try:
        from traits.logs import setup_logging
    except ImportError:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    else:
        setup_logging(level=level)
    if not debug and not daemon:
        # a command prints each run's outcome itself; the run's own log lines would repeat it.
        # A filter on this command's handlers, not a logger level, so nothing outlives it.
        for handler in logging.getLogger().handlers:
            handler.addFilter(_without_run_lines)


def _without_run_lines(record: logging.LogRecord) -> bool:
    return not (record.name == "traits.run" and record.levelno < logging.ERROR)
