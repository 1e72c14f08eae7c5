"""Triggers, jitter and the first run after a (re)start, without a daemon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from traits.config.durations import parse_schedule
from traits.scheduler.schedule import first_run_time, make_trigger, stored_value

NOW = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
HOURLY = parse_schedule("every 1h")
CRON = parse_schedule("0 */6 * * *")


def test_interval_trigger_caps_jitter_at_a_tenth_of_the_interval() -> None:
    trigger = make_trigger(parse_schedule("every 2s", 1), jitter=30)
    assert trigger.jitter == pytest.approx(0.2)
    assert make_trigger(HOURLY, jitter=30).jitter == 30
    assert make_trigger(HOURLY, jitter=0).jitter is None


def test_cron_trigger_is_utc_and_takes_jitter() -> None:
    trigger = make_trigger(CRON, jitter=5)
    assert trigger.jitter == 5
    fire = trigger.get_next_fire_time(None, NOW)
    six = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)
    assert six <= fire <= six + timedelta(seconds=5)
    with pytest.raises(ValueError, match="manual"):
        make_trigger(parse_schedule("manual"), jitter=0)


def test_a_stored_future_time_is_kept() -> None:
    later = NOW + timedelta(minutes=20)
    assert first_run_time(HOURLY, stored_value(HOURLY, later), None, NOW) == later


def test_runs_due_while_down_run_once_now() -> None:
    # due five times over while the daemon was down: one run, at start
    long_ago = NOW - timedelta(hours=5)
    assert first_run_time(HOURLY, stored_value(HOURLY, long_ago), None, NOW) == NOW


def test_a_changed_schedule_starts_afresh() -> None:
    stored = stored_value(parse_schedule("every 6h"), NOW + timedelta(hours=5))
    last = NOW - timedelta(minutes=10)
    assert first_run_time(HOURLY, stored, last, NOW) == last + timedelta(hours=1)
    assert first_run_time(CRON, stored, last, NOW) == datetime(2026, 3, 1, 18, 0, tzinfo=UTC)


def test_a_new_trait_runs_now_or_one_interval_after_its_last_run() -> None:
    assert first_run_time(HOURLY, None, None, NOW) == NOW
    assert first_run_time(HOURLY, None, NOW - timedelta(hours=3), NOW) == NOW
    assert first_run_time(HOURLY, {"at": "garbage", "schedule": "every 1h"}, None, NOW) == NOW
