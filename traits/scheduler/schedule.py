"""Triggers for trait schedules, and the next run times the daemon keeps in the state store.

The daemon stores, per trait, when it will run next (``next_run:<trait>`` → the time and the
schedule it was computed for). On a restart a stored time still in the future is kept, one in
the past means the run was due while the daemon was down and runs once at start, and a
schedule that changed meanwhile starts afresh. ``traits status`` reads the same values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from traits.config.durations import Schedule

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

    from traits.config.models import Config
    from traits.state.base import StateStore

KEY_PREFIX = "next_run:"
#: jitter is capped at this share of an interval, so a short interval keeps its rhythm
MAX_JITTER_SHARE = 0.1


def value_key(trait: str) -> str:
    return KEY_PREFIX + trait


def make_trigger(schedule: Schedule, jitter: float) -> BaseTrigger:
    """An APScheduler trigger for ``schedule`` (cron in UTC); ``manual`` has none."""
    if schedule.kind == "interval":
        from apscheduler.triggers.interval import IntervalTrigger

        spread = min(jitter, schedule.seconds * MAX_JITTER_SHARE)
        return IntervalTrigger(seconds=schedule.seconds, jitter=spread or None, timezone=UTC)
    if schedule.kind == "cron":
        from apscheduler.triggers.cron import CronTrigger

        trigger = CronTrigger.from_crontab(schedule.cron, timezone=UTC)
        trigger.jitter = jitter or None  # from_crontab takes no jitter argument
        return trigger
    raise ValueError("a manual schedule has no trigger")


def first_run_time(schedule: Schedule, stored: Any, last_started: datetime | None, now: datetime) -> datetime:
    """When a trait runs first after the daemon starts (or its schedule changes)."""
    if isinstance(stored, dict) and stored.get("schedule") == str(schedule):
        try:
            at = datetime.fromisoformat(str(stored["at"]))
        except (KeyError, ValueError):
            at = None
        if at is not None:
            return max(at, now)  # due while down: once, now
    if schedule.kind == "interval":
        if last_started is None:
            return now
        return max(last_started + timedelta(seconds=schedule.seconds), now)
    fire: datetime | None = make_trigger(schedule, 0).get_next_fire_time(None, now)
    return fire or now


def stored_value(schedule: Schedule, at: datetime) -> dict[str, str]:
    return {"at": at.astimezone(UTC).isoformat(), "schedule": str(schedule)}


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def next_run_times(config: Config, state: StateStore) -> dict[str, datetime | None]:
    """Each trait's next scheduled run as the daemon stored it; None if manual, disabled or unknown."""
    times: dict[str, datetime | None] = {}
    for name, trait in config.traits.items():
        stored = state.get_value(value_key(name)) if trait.enabled and trait.schedule.kind != "manual" else None
        if isinstance(stored, dict) and stored.get("schedule") == str(trait.schedule):
            times[name] = parse_iso(str(stored.get("at")))
        else:
            times[name] = None
    return times
