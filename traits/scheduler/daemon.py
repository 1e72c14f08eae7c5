"""``traits daemon``: run every enabled trait on its schedule until told to stop.

- APScheduler 3.x ``BackgroundScheduler``, one job per trait: ``max_instances=1`` (never twice
  at once), ``coalesce`` (missed runs become one), no misfire limit (a run waiting for a free
  worker still runs), a thread pool of ``settings.concurrency``.
- Each job opens its own state store: stores are not shared between threads.
- Next run times are written to the state store (``schedule``) so a restart keeps them; a run
  killed with the daemon is resumed at the next start.
- SIGTERM/SIGINT: stop scheduling, let running traits finish for ``TRAITS_SHUTDOWN_GRACE``
  seconds (default 30), exit 0. A run still going then is cut off and resumed by the next
  start. SIGHUP: reload the config; an invalid one is logged and the old one keeps running.
- The main thread only waits for signals and writes next run times; it owns ``self.state``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from traits.config.loader import load_config
from traits.config.models import Config
from traits.errors import ExitCode, LockedError, TraitsError
from traits.logs import setup_logging
from traits.scheduler.alerts import send_alert
from traits.scheduler.metrics import Metrics
from traits.scheduler.schedule import first_run_time, make_trigger, next_run_times, parse_iso, stored_value, value_key
from traits.scheduler.server import StatusServer
from traits.state import StateStore, open_state
from traits.state.records import FINAL_STATUSES, RunRecord

log = logging.getLogger("traits.daemon")

DEFAULT_GRACE_SECONDS = 30.0
#: how often the main thread wakes to handle signals and store next run times
TICK_SECONDS = 0.2


class Daemon:
    def __init__(self, config_dir: Path, config: Config) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        self.config_dir = config_dir
        self.config = config
        self.owner = f"daemon pid {os.getpid()} on {socket.gethostname()}"
        self.state: StateStore = open_state(config)
        self.metrics = Metrics()
        self.grace = float(os.environ.get("TRAITS_SHUTDOWN_GRACE", DEFAULT_GRACE_SECONDS))
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(config.settings.concurrency)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._mutex = threading.Lock()
        self._running: dict[str, str] = {}  # trait → run start (ISO)
        self._last: dict[str, dict[str, Any]] = {}  # trait → last finished run, for /healthz and alerts
        # trait → the scheduled time of its last submitted run, and when a run last started: a
        # submitted run not started yet is still due (the event may arrive after the start)
        self._submitted: dict[str, datetime] = {}
        self._started: dict[str, datetime] = {}
        self._schedules: dict[str, str] = {}  # trait → the schedule its job was made for
        self._stored: dict[str, Any] = {}
        self._stopping = threading.Event()
        self._signals: list[int] = []

    # -- jobs ------------------------------------------------------------------------------
    def sync_jobs(self, config: Config) -> None:
        """Make the scheduler's jobs match ``config``: add, reschedule or remove per trait."""
        now = datetime.now(UTC)
        wanted = {n: t for n, t in config.traits.items() if t.enabled and t.schedule.kind != "manual"}
        for name in list(self._schedules):
            if name not in wanted:
                self.scheduler.remove_job(name)
                del self._schedules[name]
                log.info("unscheduled", extra={"trait": name})
        for name, trait in wanted.items():
            schedule = str(trait.schedule)
            if self._schedules.get(name) == schedule:
                continue
            if name in self._schedules:
                self.scheduler.remove_job(name)
            last = self._last_run(name)
            if self.state.interrupted_run(name) is not None:
                at = now  # killed with the last daemon: resume it at once
            else:
                stored = self.state.get_value(value_key(name))
                at = first_run_time(trait.schedule, stored, parse_iso(last.started_at if last else None), now)
            self.scheduler.add_job(
                self._job, make_trigger(trait.schedule, config.settings.jitter), args=[name], id=name, name=name, next_run_time=at
            )
            self._schedules[name] = schedule
            log.info("scheduled %s, next run %s", schedule, at.isoformat(timespec="seconds"), extra={"trait": name})

    def _last_run(self, name: str) -> RunRecord | None:
        runs = [r for r in self.state.runs(name, limit=5) if r.status in FINAL_STATUSES]
        with self._mutex:
            if runs and name not in self._last:
                self._last[name] = {"status": runs[0].status, "run_id": runs[0].run_id, "finished_at": runs[0].finished_at}
        return runs[0] if runs else None

    def _on_submitted(self, event: Any) -> None:
        # called by the scheduler thread while it holds its job store lock: never call back into
        # the scheduler while holding ``_mutex``, or the two locks deadlock
        with self._mutex:
            self._submitted[event.job_id] = min(event.scheduled_run_times)

    def _job(self, name: str) -> None:
        """One scheduled run of ``name``, in a worker thread. Never raises."""
        config = self.config
        now = datetime.now(UTC)
        with self._mutex:  # with ``stop``: a run either counts as running or never starts
            if self._stopping.is_set():
                return  # queued before the stop: it stays due for the next start
            self._started[name] = now
            self._running[name] = now.isoformat()
        self.metrics.running.inc()
        try:
            self._run(config, name)
        finally:
            self.metrics.running.dec()
            with self._mutex:
                self._running.pop(name, None)

    def _run(self, config: Config, name: str) -> None:
        from traits.pipeline.if_changed import Decision, decide, remember
        from traits.pipeline.run import RunOptions, run_trait

        if name not in config.traits:
            return
        state: StateStore | None = None
        records: list[RunRecord] = []
        try:
            state = open_state(config)
            decision = decide(config, state, name) if config.traits[name].model else Decision(None)
            result = run_trait(config, state, name, RunOptions(owner=self.owner))
            if result.record.status == "ok":
                remember(state, name, decision)  # so `traits run --if-changed` after it skips an unrebuilt model
            # a killed run resumed first is a history record of its own: count both
            records = [result.resumed.record, result.record] if result.resumed is not None else [result.record]
        except LockedError as e:
            self.metrics.skipped.labels(name, "locked").inc()
            log.warning("skipped: %s", e, extra={"trait": name})
            return
        except TraitsError as e:  # the store failed before a run record was written
            self.metrics.skipped.labels(name, "error").inc()
            log.error("could not run: %s", e, extra={"trait": name})  # noqa: TRY400 - the message says it all
            return
        except Exception:  # one trait's bug never stops the daemon
            log.exception("run crashed", extra={"trait": name})
            crashed = self._crashed_record(state, name)
            if crashed is None:
                self.metrics.skipped.labels(name, "error").inc()
                return
            records = [crashed]
        finally:
            if state is not None:
                state.close()
        for record in records:
            self._finished(config, record)

    def _crashed_record(self, state: StateStore | None, name: str) -> RunRecord | None:
        """The record run_trait saved as failed before re-raising, if it got that far."""
        try:
            runs = state.runs(name, limit=1) if state is not None else []
        except TraitsError:
            return None
        return runs[0] if runs and runs[0].owner == self.owner and runs[0].status == "failed" else None

    def _finished(self, config: Config, record: RunRecord) -> None:
        self.metrics.observe(record, time.time())
        with self._mutex:
            previous = self._last.get(record.trait, {}).get("status")
            self._last[record.trait] = {"status": record.status, "run_id": record.run_id, "finished_at": record.finished_at}
        send_alert(config.alerts, record, previous)

    # -- health ----------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        thread = getattr(self.scheduler, "_thread", None)
        alive = bool(self.scheduler.running and thread is not None and thread.is_alive())
        config = self.config
        jobs = {job.id: job for job in self.scheduler.get_jobs()} if alive else {}  # not under _mutex
        traits: dict[str, Any] = {}
        with self._mutex:
            for name, trait in config.traits.items():
                job = jobs.get(name)
                traits[name] = {
                    "schedule": str(trait.schedule) if trait.enabled else "disabled",
                    "running": name in self._running,
                    "next_run": job.next_run_time.isoformat() if job is not None and job.next_run_time else None,
                    "last_run": self._last.get(name),
                }
        body = {"status": "ok" if alive else "scheduler stopped", "scheduler_alive": alive, "owner": self.owner, "traits": traits}
        return alive, body

    # -- next run times --------------------------------------------------------------------
    def store_next_runs(self) -> None:
        """Write each trait's next run (a submitted run not yet started counts as due) if it changed."""
        for job in self.scheduler.get_jobs():
            with self._mutex:
                submitted, started = self._submitted.get(job.id), self._started.get(job.id)
            due = submitted is not None and (started is None or submitted > started)
            at = submitted if due else job.next_run_time
            trait = self.config.traits.get(job.id)
            if at is None or trait is None:
                continue
            value = stored_value(trait.schedule, at)
            if self._stored.get(job.id) != value:
                self.state.set_value(value_key(job.id), value)
                self._stored[job.id] = value

    # -- signals and the main loop ---------------------------------------------------------
    def _signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP and self._stopping.is_set():
            return  # no reloads while stopping
        self._signals.append(signum)  # handled by the main loop, outside the handler

    def reload(self) -> None:
        try:
            config = load_config(self.config_dir)
        except TraitsError as e:
            log.error("config reload failed, keeping the running config: %s", e)  # noqa: TRY400 - names file:line
            return
        if config.settings.concurrency != self.config.settings.concurrency or config.settings.state != self.config.settings.state:
            log.warning("settings.concurrency and settings.state take effect at the next restart")
        self.config = config
        try:
            self.sync_jobs(config)
        except TraitsError as e:
            log.error("config reloaded, but scheduling it failed: %s", e)  # noqa: TRY400 - the message says it all
            return
        log.info("config reloaded", extra={"status": f"{len(self._schedules)} trait(s) scheduled"})

    def serve(self, host: str, port: int) -> int:
        from apscheduler.events import EVENT_JOB_SUBMITTED

        try:
            server = StatusServer(host, port, self.health, self.metrics.render, config=lambda: self.config)
        except OSError as e:
            log.error("cannot serve health and metrics on %s:%s: %s", host, port, e.strerror)  # noqa: TRY400
            return ExitCode.CONFIG
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._signal)
        self.scheduler.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)
        self.sync_jobs(self.config)
        self.scheduler.start()
        server.start()
        log.info("daemon started", extra={"status": f"serving http://{server.address}/healthz, /metrics and the console at /"})
        try:
            return self._loop()
        finally:
            server.stop()

    def _loop(self) -> int:
        dead_logged = False
        while True:
            while self._signals:
                signum = self._signals.pop(0)
                if signum == signal.SIGHUP:
                    self.reload()
                else:
                    return self.stop(signal.Signals(signum).name)
            try:
                self.store_next_runs()
            except TraitsError as e:  # the store is down: keep scheduling, retry next tick
                log.warning("could not store next run times: %s", e)
                self._stored.clear()
            healthy, _ = self.health()
            if not healthy and not dead_logged:
                log.error("the scheduler thread stopped; /healthz now answers 503")
                dead_logged = True
            self._stopping.wait(TICK_SECONDS)

    def stop(self, reason: str) -> int:
        log.info("stopping (%s): waiting up to %gs for running traits", reason, self.grace)
        with self._mutex:
            self._stopping.set()
        self.scheduler.pause()
        deadline = time.monotonic() + self.grace
        while self._running and time.monotonic() < deadline:
            if self._signals:  # a second SIGTERM/SIGINT: do not wait any longer
                log.warning("asked again to stop: not waiting for running traits")
                break
            time.sleep(TICK_SECONDS)
        try:
            self.store_next_runs()
        except TraitsError as e:
            log.warning("could not store next run times: %s", e)
        with self._mutex:
            cut = sorted(self._running)
        self.scheduler.shutdown(wait=False)
        self.state.close()
        if cut:
            # worker threads cannot be stopped; leaving now is what a kill would do, and each
            # cut run is marked running, so the next start resumes it under the same run_id
            log.warning("grace period over; these runs resume at the next start: %s", ", ".join(cut))
            logging.shutdown()
            os._exit(ExitCode.OK)
        log.info("stopped")
        return ExitCode.OK


def run_daemon(config_dir: Path, host: str = "127.0.0.1", port: int = 9465) -> int:
    """Run the scheduler until SIGTERM/SIGINT; returns the exit code."""
    # INFO unless ``--debug`` already asked for more, or TRAITS_LOG_LEVEL says otherwise
    debug = logging.getLogger().level == logging.DEBUG
    setup_logging(level="DEBUG" if debug else os.environ.get("TRAITS_LOG_LEVEL", "INFO"))
    try:
        config = load_config(config_dir)
        daemon = Daemon(config_dir, config)
        return daemon.serve(host, port)
    except TraitsError as e:
        log.error("%s", e)  # noqa: TRY400 - a user error, no traceback
        return e.exit_code


__all__ = ["Daemon", "next_run_times", "run_daemon"]
