"""Durations (``30s``, ``10m``, ``1h30m``) and trait schedules (``every 12h``, cron, ``manual``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a number of seconds or text such as ``90s``, ``10m``, ``1h30m``."""
    # ValueError, not TypeError: pydantic reports only ValueErrors as validation problems
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 30s, 10m, 1h")  # noqa: TRY004
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("a duration is a number of seconds or text like 30s, 10m, 1h")  # noqa: TRY004
    text = value.strip().lower().replace(" ", "")
    if text and _PART.sub("", text) == "" and _PART.search(text):
        return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    raise ValueError(f"{value!r} is not a duration: write e.g. 30s, 10m, 1h or 1h30m")


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0 and not (unit == "d" and seconds <= 86400):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


#: the shortest interval a schedule may use; tests lower it through TRAITS_MIN_INTERVAL
DEFAULT_MIN_INTERVAL = 60.0


@dataclass(frozen=True)
class Schedule:
    kind: Literal["interval", "cron", "manual"]
    seconds: float = 0.0
    cron: str = ""

    def __str__(self) -> str:
        if self.kind == "interval":
            return f"every {format_duration(self.seconds)}"
        if self.kind == "cron":
            return self.cron
        return "manual"


def parse_schedule(value: object, min_interval: float = DEFAULT_MIN_INTERVAL) -> Schedule:
    if not isinstance(value, str) or not value.strip():
        raise ValueError('a schedule is "every 12h", a cron expression such as "0 */6 * * *", or manual')
    text = value.strip()
    if text.lower() == "manual":
        return Schedule("manual")
    if text.lower().startswith("every "):
        seconds = parse_duration(text[6:])
        if seconds < min_interval:
            raise ValueError(f"{text!r} is too frequent: the shortest interval is {format_duration(min_interval)}")
        return Schedule("interval", seconds=seconds)
    fields = text.split()
    if len(fields) == 5:
        _check_cron(text)
        return Schedule("cron", cron=text)
    raise ValueError(f"{text!r} is not a schedule: write every 12h, a 5-field cron expression, or manual")


def _check_cron(expression: str) -> None:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(expression, timezone="UTC")
    except ValueError as e:
        raise ValueError(f"{expression!r} is not a valid cron expression: {e}") from e
