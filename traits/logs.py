"""Logging for the command line and the daemon: JSON lines off a terminal, text on one.

A secret that reached a message, an ``extra`` field or a traceback is scrubbed before it is
written anywhere: text lines as a whole, JSON lines value by value before they are serialised.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from traits.config.env import redact

#: the ``extra`` fields the pipeline and the daemon attach, shown in text logs too
CONTEXT_FIELDS = ("trait", "run_id", "phase", "status", "destination", "sent", "failed")


#: LogRecord attributes that hold no user text
_PLAIN_FIELDS = frozenset(
    ("name", "levelname", "levelno", "pathname", "filename", "module", "lineno", "funcName", "created", "msecs",
     "relativeCreated", "thread", "threadName", "processName", "process", "msg", "args", "exc_info", "exc_text", "stack_info", "taskName")
)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_FIELDS if getattr(record, k, None) is not None)
        if context:
            first, sep, rest = text.partition("\n")  # keep a traceback below the context
            text = f"{first} [{context}]{sep}{rest}"
        return redact(text)


def _json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    class RedactingJsonFormatter(JsonFormatter):
        """Redacts the message, every extra field and the traceback before they are serialised."""

        def format(self, record: logging.LogRecord) -> str:
            clean = logging.makeLogRecord(record.__dict__)
            clean.msg, clean.args, clean.exc_text = redact(record.getMessage()), None, None
            for key, value in list(vars(clean).items()):
                if key not in _PLAIN_FIELDS:
                    setattr(clean, key, redact.data(value))
            return str(super().format(clean))

        def formatException(self, ei: Any) -> str:
            return redact(str(super().formatException(ei)))

        def formatStack(self, stack_info: str) -> str:
            return redact(str(super().formatStack(stack_info)))

    formatter: logging.Formatter = RedactingJsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        json_ensure_ascii=False,
    )
    return formatter


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so a second call replaces it."""


def setup_logging(json_lines: bool | None = None, level: str = "INFO") -> None:
    """Log to stderr: JSON lines when ``json_lines`` or when stderr is not a terminal."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    handler = _Handler(sys.stderr)
    handler.setFormatter(_json_formatter() if json_lines else _TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # APScheduler says "Running job ..." at INFO for every run; our own run logs say more
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
    # httpx logs every request's full URL at INFO; an alert webhook's URL is its secret;
    # uvicorn (the console's server) says "Started server process" and the like at INFO
    for name in ("httpx", "httpcore", "uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def log_extra(**fields: Any) -> dict[str, Any]:
    """``extra=`` without the None values."""
    return {k: v for k, v in fields.items() if v is not None}
