"""Logging for commands: quiet by default (warnings), JSON lines or text from ``traits.logs``."""

from __future__ import annotations

import logging


def configure(debug: bool) -> None:
    level = "DEBUG" if debug else "WARNING"
    try:
        from traits.logs import setup_logging
    except ImportError:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        return
    setup_logging(level=level)
