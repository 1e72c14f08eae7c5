"""The daemon as a real subprocess: schedules, overlap, signals, a second daemon, metrics."""

from __future__ import annotations

import itertools
import json
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from traits.state.records import RunRecord

from .conftest import SLOW_SQL, USERS, Hook, Project, trait_yaml, wait_for

pytestmark = pytest.mark.slow
FAST_SQL = "select user_id, plan from users"


def started(r: RunRecord) -> datetime:
    return datetime.fromisoformat(r.started_at.replace("Z", "+00:00"))


def ended(r: RunRecord) -> datetime:
    assert r.finished_at is not None
    return datetime.fromisoformat(r.finished_at.replace("Z", "+00:00"))


def assert_no_overlap(runs: list[RunRecord]) -> None:
    done = sorted((r for r in runs if r.finished_at), key=started)
    for before, after in itertools.pairwise(done):
        assert started(after) >= ended(before), f"runs overlap: {before.run_id} and {after.run_id}"


def metric_counts(text: str) -> dict[tuple[str, str], float]:
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "traits_runs_total":
                counts[(sample.labels["trait"], sample.labels["status"])] = sample.value
    return counts


def test_runs_on_time_in_parallel_and_metrics_match_history(project: Project, daemons) -> None:
    project.traits(trait_yaml("fast_a", FAST_SQL, "out_a") + trait_yaml("fast_b", FAST_SQL, "out_b") + trait_yaml("slow", SLOW_SQL, "out_slow"))
    daemon = daemons()
    wait_for(lambda: len(project.finished("fast_a")) >= 4 and len(project.finished("fast_b")) >= 4 and project.finished("slow"),
             "four runs of each fast trait and one of the slow one", 40)

    for name in ("fast_a", "fast_b", "slow"):
        runs = project.finished(name)
        assert {r.status for r in runs} == {"ok"}, [(r.status, r.error) for r in runs]
        assert_no_overlap(runs)
    # the slow trait never holds the fast ones back: a whole fast run fits inside the slow one
    # (no timing window: the order of the runs' own recorded times says it)
    fast = project.finished("fast_a")
    slow = project.finished("slow")[0]
    assert any(started(slow) < started(r) and ended(r) < ended(slow) for r in fast), "a fast trait ran while the slow one did"
    assert project.sent_ids("a.jsonl") == {f"u{i}" for i in range(USERS)}

    health = daemon.get("/healthz")
    assert health is not None
    assert health[0] == 200
    body = json.loads(health[1])
    assert body["scheduler_alive"] is True
    assert body["traits"]["fast_a"]["last_run"]["status"] == "ok"
    assert body["traits"]["fast_a"]["next_run"] is not None

    def agree() -> bool:
        response = daemon.get("/metrics")
        assert response is not None
        assert response[0] == 200
        metrics = metric_counts(response[1].decode())
        history = Counter((r.trait, r.status) for r in project.runs() if r.status != "running" and r.owner == daemon.owner)
        return metrics == {k: float(v) for k, v in history.items()}

    wait_for(agree, "/metrics traits_runs_total to match the history records")
    text = daemon.get("/metrics")[1].decode()  # type: ignore[index]
    families = {f.name: f for f in text_string_to_metric_families(text)}
    sent = sum(s.value for s in families["traits_sent"].samples if s.name == "traits_sent_total" and s.labels["trait"] == "fast_a")
    assert sent == sum(r.sent for r in project.finished("fast_a") if r.owner == daemon.owner) == USERS
    assert "traits_run_duration_seconds" in families
    assert "traits_last_success_timestamp_seconds" in families

    assert daemon.stop() == 0
    assert [r.run_id for r in project.runs() if r.status == "running"] == [], "a graceful stop finishes its runs"


def test_sigterm_mid_run_exits_0_and_the_next_start_picks_up(project: Project, daemons) -> None:
    project.traits(trait_yaml("slow", SLOW_SQL, "out_slow", "every 1h"))
    first = daemons(env={"TRAITS_SHUTDOWN_GRACE": "0.5"})
    running = wait_for(lambda: [r for r in project.runs("slow") if r.status == "running"], "the slow run to start", 20)[0]
    first.signal(signal.SIGTERM)
    assert first.process.wait(timeout=15) == 0
    cut = project.runs("slow")
    assert [(r.run_id, r.status) for r in cut] == [(running.run_id, "running")], "the cut run is left for the next start"
    store = project.state()
    assert store.lock_holder("slow") is None
    store.close()

    second = daemons(env={"TRAITS_SHUTDOWN_GRACE": "30"})
    wait_for(lambda: len(project.finished("slow")) == 2, "the next start to settle the cut run and run again", 30)
    closed, fresh = project.runs("slow")
    # cut before anything was sent: closed as failed, and a fresh run sends everything
    assert (closed.run_id, closed.status, closed.phase) == (running.run_id, "failed", "query")
    assert "interrupted" in (closed.error or "")
    assert fresh.status == "ok"
    assert fresh.owner == second.owner
    assert project.sent_ids("slow.jsonl") == {f"u{i}" for i in range(USERS)}
    assert second.stop() == 0


def test_a_second_daemon_never_runs_a_trait_at_the_same_time(project: Project, daemons) -> None:
    project.traits(trait_yaml("slow", SLOW_SQL, "out_slow") + trait_yaml("fast_a", FAST_SQL, "out_a"))
    one, two = daemons(name="one"), daemons(name="two")
    wait_for(lambda: len(project.finished("slow")) >= 2, "two slow runs", 45)
    for name in ("slow", "fast_a"):
        assert_no_overlap(project.runs(name))
        assert all(r.status == "ok" for r in project.finished(name))
    skipped = [
        rec for d in (one, two) for rec in d.logs()
        if rec.get("trait") == "slow" and "is already running (daemon pid" in str(rec.get("message"))
    ]
    assert skipped, "a daemon logged that the other held the trait"
    assert one.stop() == 0
    assert two.stop() == 0


def test_sighup_with_a_broken_config_keeps_the_old_schedule(project: Project, daemons) -> None:
    project.traits(trait_yaml("fast_a", FAST_SQL, "out_a"))
    daemon = daemons()
    wait_for(lambda: project.finished("fast_a"), "a first run")
    (project.root / "traits.yml").write_text("traits:\n  fast_a:\n    kind: user\n    source: demo\n    bogus_key: 1\n")
    daemon.signal(signal.SIGHUP)
    error = wait_for(lambda: [r for r in daemon.logs() if "config reload failed" in str(r.get("message"))], "the reload error")[0]
    assert error["level"] == "ERROR"
    assert "traits.yml:5:" in error["message"], error["message"]
    before = len(project.finished("fast_a"))
    wait_for(lambda: len(project.finished("fast_a")) >= before + 2, "the old schedule to keep running")

    # a valid config then takes effect: a new trait is scheduled
    project.traits(trait_yaml("fast_a", FAST_SQL, "out_a") + trait_yaml("fast_c", FAST_SQL, "out_c"))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: project.finished("fast_c"), "the new trait to run")
    assert daemon.process.poll() is None
    assert daemon.stop() == 0


def test_next_run_survives_a_restart_and_a_due_run_runs_once_at_start(project: Project, daemons) -> None:
    from traits.config.loader import load_config
    from traits.scheduler import next_run_times

    project.traits(trait_yaml("fast_a", FAST_SQL, "out_a", "every 1h") + trait_yaml("fast_b", FAST_SQL, "out_b", "every 1h"))
    first = daemons()
    wait_for(lambda: project.finished("fast_a") and project.finished("fast_b"), "the first runs of new traits")
    config = load_config(project.root)
    store = project.state()

    def stored_later() -> dict[str, datetime | None] | None:
        times = next_run_times(config, store)
        soon = datetime.now(UTC) + timedelta(minutes=50)
        return times if all(t is not None and t > soon for t in times.values()) else None

    stored = wait_for(stored_later, "the next runs, an hour on, to be stored")
    assert first.stop() == 0

    # fast_b was due while the daemon was down; fast_a was not
    store.set_value("next_run:fast_b", {"at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(), "schedule": "every 1h"})
    store.close()
    second = daemons()
    wait_for(lambda: len(project.finished("fast_b")) == 2, "the due run at start")
    health = json.loads(second.get("/healthz")[1])  # type: ignore[index]
    assert datetime.fromisoformat(health["traits"]["fast_a"]["next_run"]) == stored["fast_a"]
    assert len(project.finished("fast_a")) == 1
    assert second.stop() == 0


@pytest.mark.postgres
def test_two_daemons_on_the_postgres_state_store(project: Project, daemons, pg_state_dsn: str) -> None:
    project.state_dsn = pg_state_dsn
    project.traits(trait_yaml("slow", SLOW_SQL, "out_slow") + trait_yaml("fast_a", FAST_SQL, "out_a"))
    one, two = daemons(name="one"), daemons(name="two")
    wait_for(lambda: len(project.finished("slow")) >= 2 and len(project.finished("fast_a")) >= 3, "runs on the Postgres store", 45)
    for name in ("slow", "fast_a"):
        assert_no_overlap(project.runs(name))
        assert {r.status for r in project.finished(name)} == {"ok"}
    assert project.sent_ids("a.jsonl") == {f"u{i}" for i in range(USERS)}
    assert sum(r.sent for r in project.finished("fast_a")) == USERS, "the snapshot in Postgres stops resends"

    def agree() -> bool:
        history = Counter((r.trait, r.status) for r in project.runs() if r.status != "running")
        metrics: Counter[tuple[str, str]] = Counter()
        for d in (one, two):
            response = d.get("/metrics")
            assert response is not None
            metrics.update({k: int(v) for k, v in metric_counts(response[1].decode()).items()})
        return +metrics == +history

    wait_for(agree, "both daemons' counters to add up to the shared history")
    assert one.stop() == 0
    assert two.stop() == 0


def test_sigterm_while_delivering_resumes_under_the_same_run_id(project: Project, daemons) -> None:
    receiver = Hook(delay=0.15)  # 20 calls, one at a time: about 3 s of delivery
    try:
        (project.root / "hook.yml").write_text(
            f"destinations:\n  hook: {{type: webhook, url: '{receiver.url}', batch_size: 1, concurrency: 1}}\n"
        )
        project.traits(trait_yaml("fast_a", FAST_SQL, "hook", "every 1h"))
        first = daemons(env={"TRAITS_SHUTDOWN_GRACE": "0.5"})
        wait_for(lambda: len(receiver.bodies) >= 3, "the delivery to be under way")
        first.signal(signal.SIGTERM)
        assert first.process.wait(timeout=15) == 0
        [cut] = project.runs("fast_a")
        assert (cut.status, cut.phase) == ("running", "deliver")
        delivered_before = len(receiver.bodies)
        assert delivered_before < USERS

        second = daemons()
        wait_for(lambda: project.finished("fast_a"), "the cut run to be resumed and finished", 30)
        runs = project.runs("fast_a")
        assert runs[0].run_id == cut.run_id
        assert runs[0].status == "ok"
        assert runs[0].resumed >= 1
        received = {b["userId"]: b["messageId"] for b in receiver.bodies}
        assert set(received) == {f"u{i}" for i in range(USERS)}, "nothing lost"
        by_id: dict[str, set[str]] = {}
        for b in receiver.bodies:
            by_id.setdefault(b["userId"], set()).add(b["messageId"])
        assert all(len(ids) == 1 for ids in by_id.values()), "a resent call carries its first messageId"
        assert second.stop() == 0
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def test_alerts_on_failure_and_recovery(project: Project, daemons, hook: Hook) -> None:
    (project.root / "alerts.yml").write_text(f"alerts:\n  url: '{hook.url}'\n")
    project.traits(trait_yaml("broken", "select user_id, plan from no_such_table", "out_a"))
    daemon = daemons()
    wait_for(lambda: hook.texts(), "a failure alert")
    assert "broken" in hook.texts()[0]
    assert "failed" in hook.texts()[0]
    assert "SECRET-PATH" not in daemon.log_text()
    project.traits(trait_yaml("broken", FAST_SQL, "out_a"))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: any("recovered" in t for t in hook.texts()), "a recovery alert")
    assert daemon.stop() == 0
