"""The daemon: every enabled trait on its schedule, with health, metrics and alerts."""

from __future__ import annotations

from traits.scheduler.daemon import run_daemon
from traits.scheduler.schedule import next_run_times

__all__ = ["next_run_times", "run_daemon"]
