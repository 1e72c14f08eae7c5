"""What each console page shows, as plain JSON-ready data: one function per page.

The web page renders exactly the dict its function returns and the ``/api/...`` twin sends it
as JSON, so a script and a person never read different numbers (Datasette's habit).
``traits explain`` prints ``profile``. Nothing here writes: every function only reads the
config and the state store.

No secret reaches these dicts: a destination is described by its type and host or path (never
a key, a secret, a header or a URL's credentials or query), a source by its type only, and the
console passes every response through the redactor as a last guard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from traits.config.models import Config, FileDestination, SegmentDestination, WebhookDestination
from traits.errors import TraitsError
from traits.state import StateStore, open_state
from traits.state.records import FINAL_STATUSES, HeldValues, RunRecord, health

#: runs per page of a trait's history table, given-up calls per page of a run
RUNS_PER_PAGE = 50
CALLS_PER_PAGE = 10
#: how many of the newest runs a trait's chart draws
CHART_RUNS = 200
#: the series the chart draws, in order
SERIES = ("rows", "added", "changed", "exited", "sent", "failed")
RUN_COUNTS = ("rows", "rows_fetched", "bytes_fetched", "added", "changed", "unchanged", "exited", "sent", "failed")

#: what to do next, by run status (shown beside the error)
NEXT_STEP = {
    "guarded": "the guard stopped the run before anything was sent: check the query, then `traits run NAME --force` if the result is right",
    "invalid": "the result broke a validation rule and nothing was sent: fix the query (try `traits preview NAME`)",
    "partial": "calls not acknowledged keep their old snapshot value: the next run sends them again",
    "failed": "nothing that failed was acknowledged: the next run sends it again once the cause is fixed",
    "running": "still running, or killed: the next start resumes it under the same run_id",
}


class NotFound(TraitsError):
    """An unknown trait, run or id: the console answers 404."""


@dataclass
class Console:
    """Where the pages read from: the current config, a way to open the state, live daemon facts."""

    config: Callable[[], Config]
    #: the daemon's /healthz body (next run times, running traits), when served by a daemon
    live: Callable[[], dict[str, Any]] | None = None

    @contextmanager
    def state(self, config: Config) -> Iterator[StateStore]:
        store = open_state(config)
        try:
            yield store
        finally:
            store.close()


# -- describing config without secrets -----------------------------------------------------
def describe_destination(config: Config, name: str) -> dict[str, Any]:
    dest = config.destinations.get(name)
    if dest is None:
        return {"name": name, "type": "unknown", "target": "(not in the config any more)"}
    if isinstance(dest, FileDestination):
        target = dest.path
    elif isinstance(dest, SegmentDestination):
        target = _host_only(dest.base_url)
    elif isinstance(dest, WebhookDestination):
        target = _host_only(dest.url)  # a webhook's path is often its secret (…/hooks/T0/XyZ)
    else:  # pragma: no cover - every type is above
        target = ""
    return {"name": name, "type": dest.type, "target": target}


def _host_only(url: str) -> str:
    """A URL's scheme, host and port, without credentials, path or query: what is safe to show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def _trait_settings(config: Config, name: str) -> dict[str, Any]:
    trait = config.traits[name]
    source = config.sources.get(trait.source)
    return {
        "name": name, "description": trait.description, "kind": trait.kind, "identity": trait.identity_column,
        "source": trait.source, "source_type": source.type if source is not None else "unknown",
        "sql_file": trait.sql_file, "destinations": [describe_destination(config, d) for d in trait.destinations],
        "schedule": str(trait.schedule), "enabled": trait.enabled, "on_exit": trait.on_exit, "send": trait.send,
        "max_exit_ratio": trait.max_exit_ratio, "max_change_ratio": trait.max_change_ratio,
        "max_rows": config.max_rows_for(name),
    }


# -- runs as shown --------------------------------------------------------------------------
def run_summary(run: RunRecord) -> dict[str, Any]:
    """The fields of a run a table row shows."""
    data: dict[str, Any] = {k: getattr(run, k) for k in ("run_id", "trait", "status", "started_at", "finished_at", "duration", "error")}
    data.update({k: getattr(run, k) for k in RUN_COUNTS})
    data["resumed"] = run.resumed
    data["forced"] = run.force
    data["dry_run"] = run.dry_run
    return data


def _chart(config: Config, name: str, runs: list[RunRecord]) -> dict[str, Any]:
    """The chart's points, oldest first, with the guard's limits where a snapshot existed."""
    trait = config.traits[name]
    points = []
    for run in reversed(runs):
        if run.status == "running":
            continue
        # the guard holds each destination's exits to its share of that destination's snapshot;
        # the chart draws run totals, so its limit is the sum of those
        snapshot = sum(c.unchanged + c.changed + c.exited for c in run.destinations.values())
        point: dict[str, Any] = {"run_id": run.run_id, "started_at": run.started_at, "status": run.status}
        point.update({k: getattr(run, k) for k in SERIES})
        point["exit_limit"] = round(trait.max_exit_ratio * snapshot) if snapshot else None
        point["change_limit"] = round(trait.max_change_ratio * snapshot) if snapshot and trait.max_change_ratio is not None else None
        point["destinations"] = {d: {k: getattr(c, k) for k in SERIES if k != "rows"} for d, c in run.destinations.items()}
        points.append(point)
    return {"series": list(SERIES), "points": points, "max_exit_ratio": trait.max_exit_ratio, "max_change_ratio": trait.max_change_ratio}


def _paging(page: int, per_page: int, total: int) -> dict[str, int]:
    pages = max(1, -(-total // per_page))
    return {"page": min(max(page, 1), pages), "per_page": per_page, "total": total, "pages": pages}


def _live_traits(console: Console) -> dict[str, Any]:
    if console.live is None:
        return {}
    traits: dict[str, Any] = console.live().get("traits", {})
    return traits


def _next_runs(console: Console, config: Config, state: StateStore) -> dict[str, str | None]:
    """Each trait's next run: from the daemon serving this console, else as a daemon stored it."""
    if console.live is not None:
        live = _live_traits(console)
        return {name: (str(live[name]["next_run"]) if live.get(name, {}).get("next_run") else None) for name in config.traits}
    from traits.scheduler.schedule import next_run_times

    return {name: at.isoformat() if isinstance(at, datetime) else None for name, at in next_run_times(config, state).items()}


# -- the pages ------------------------------------------------------------------------------
def traits_list(console: Console) -> dict[str, Any]:
    """Every trait with its health, last run, next run and who holds it now."""
    config = console.config()
    rows: list[dict[str, Any]] = []
    with console.state(config) as state:
        upcoming = _next_runs(console, config, state)
        for name, trait in config.traits.items():
            last = next((r for r in state.runs(name, 5) if r.status in FINAL_STATUSES), None)
            holder = state.lock_holder(name)
            source = config.sources.get(trait.source)
            row: dict[str, Any] = {
                "name": name, "description": trait.description, "kind": trait.kind, "source": trait.source,
                "source_type": source.type if source is not None else "unknown",
                "destinations": list(trait.destinations), "schedule": str(trait.schedule), "enabled": trait.enabled,
                "health": health(last, holder is not None), "held_by": holder,
                "last_run": run_summary(last) if last else None,
                "next_run": upcoming.get(name) if trait.enabled else None,
                "runs": state.count_runs(name),
            }
            rows.append(row)
    attention = [r["name"] for r in rows if r["last_run"] and r["last_run"]["status"] in ("failed", "guarded", "invalid", "partial")]
    return {"traits": rows, "needs_attention": attention}


def trait_detail(console: Console, name: str, page: int = 1, per_page: int = RUNS_PER_PAGE) -> dict[str, Any]:
    """A trait's SQL and settings, a page of its history, and the chart of its newest runs."""
    config = console.config()
    if name not in config.traits:
        raise NotFound(f"no trait named {name!r}", hint="the traits page lists them")
    with console.state(config) as state:
        total = state.count_runs(name)
        paging = _paging(page, per_page, total)
        runs = state.runs(name, per_page, (paging["page"] - 1) * per_page)
        chart_runs = state.runs(name, CHART_RUNS)
        held_by = state.lock_holder(name)
        next_run = _next_runs(console, config, state).get(name)
        snapshots = state.snapshot_destinations(name)
    try:
        sql = config.trait_sql(name)
    except OSError as e:
        sql = f"-- cannot read {config.traits[name].sql_file}: {e.strerror}"
    last = next((r for r in chart_runs if r.status in FINAL_STATUSES), None)
    return {
        "trait": _trait_settings(config, name), "sql": sql, "health": health(last, held_by is not None),
        "held_by": held_by, "next_run": next_run, "snapshots": snapshots,
        "runs": [run_summary(r) for r in runs], "paging": paging, "chart": _chart(config, name, chart_runs),
    }


def run_detail(console: Console, run_id: str, page: int = 1, per_page: int = CALLS_PER_PAGE) -> dict[str, Any]:
    """One run: per-destination counts, timings per phase, the error, the calls given up (paged)."""
    config = console.config()
    with console.state(config) as state:
        run = state.run(run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id!r}", hint="a trait's page lists its runs")
    destinations = []
    given_up: list[dict[str, Any]] = []
    for dest_name, counts in run.destinations.items():
        entry = {"name": dest_name, **describe_destination(config, dest_name)}
        entry.update({k: getattr(counts, k) for k in ("added", "changed", "unchanged", "exited", "sent", "failed", "status", "error")})
        entry["given_up_kept"] = len(counts.rejections)
        destinations.append(entry)
        given_up.extend({"destination": dest_name, **r} for r in counts.rejections)
    paging = _paging(page, per_page, len(given_up))
    start = (paging["page"] - 1) * per_page
    return {
        "run": run_summary(run), "phase": run.phase, "owner": run.owner, "full_resync": run.full_resync,
        "phases": _phases(run), "destinations": destinations,
        "next_step": NEXT_STEP[run.status].replace("NAME", run.trait) if run.status in NEXT_STEP else None,
        "given_up": given_up[start : start + per_page], "given_up_paging": paging,
        "given_up_total": run.failed,
        "dry_run": run.dry_run,
        # a dry run kept in history (`traits run --dry-run --record`): the first calls it would send
        "dry_run_calls": [{"destination": d, "call": c} for d, calls in run.planned_calls.items() for c in calls],
    }


def _phases(run: RunRecord) -> list[dict[str, Any]]:
    from traits.scheduler.schedule import parse_iso

    marks = [(p, parse_iso(at)) for p, at in run.phase_started.items()]
    marks = [(p, at) for p, at in marks if at is not None]
    marks.sort(key=lambda m: m[1])  # type: ignore[arg-type, return-value]
    end = parse_iso(run.finished_at)
    phases = []
    for index, (phase, at) in enumerate(marks):
        until = marks[index + 1][1] if index + 1 < len(marks) else end
        seconds = (until - at).total_seconds() if until is not None and at is not None else None
        phases.append({"phase": phase, "started_at": at.isoformat() if at else None, "seconds": round(seconds, 3) if seconds is not None else None})
    return phases


def profile(console: Console, identity: str, trait: str | None = None) -> dict[str, Any]:
    """For every trait and destination that ever sent ``identity``: what it holds, since which run.

    ``status_in_last_run`` says what the trait's newest finished run did for this id: ``sent``
    or ``exited`` (this run got it acknowledged), ``given up`` (among the calls it gave up),
    ``unchanged``, or ``not sent: <status>`` when that run stopped before delivering.
    """
    config = console.config()
    if trait is not None and trait not in config.traits:
        raise NotFound(f"no trait named {trait!r}", hint="the traits page lists them")
    names = [trait] if trait is not None else list(config.traits)
    entries = []
    with console.state(config) as state:
        records: dict[str, RunRecord | None] = {}

        def record(run_id: str | None) -> RunRecord | None:
            if run_id is None:
                return None
            if run_id not in records:
                records[run_id] = state.run(run_id)
            return records[run_id]

        for name in names:
            destinations = list(dict.fromkeys([*config.traits[name].destinations, *state.snapshot_destinations(name)]))
            last = next((r for r in state.runs(name, 5) if r.status in FINAL_STATUSES), None)
            for dest in destinations:
                held = state.held(name, dest, identity)
                if held is None:
                    continue
                run = record(held.run_id)
                entries.append(_entry(config, held, run, last))
    if not entries:
        raise NotFound(
            f"no destination holds anything for id {identity!r}" + (f" from trait {trait}" if trait else ""),
            hint="check the id (user_id or group_id, as the trait's SQL returns it) or run the trait first",
        )
    return {"id": identity, "trait": trait, "entries": entries}


def _entry(config: Config, held: HeldValues, run: RunRecord | None, last: RunRecord | None) -> dict[str, Any]:
    trait = config.traits.get(held.trait)
    sent = {k: None for k in held.values} if held.exited else held.values
    return {
        "trait": held.trait, "destination": held.destination, "kind": trait.kind if trait else None,
        "values": sent, "values_before_exit": held.values if held.exited else None, "user_id": held.user_id,
        "run_id": held.run_id, "at": run.finished_at if run else None, "exited": held.exited,
        "last_run": {"run_id": last.run_id, "status": last.status, "started_at": last.started_at} if last else None,
        "status_in_last_run": _status_in(held, last),
    }


def _status_in(held: HeldValues, last: RunRecord | None) -> str:
    if last is None:
        return "unknown"
    counts = last.destinations.get(held.destination)
    if counts is not None and any(r.get("id") == held.id for r in counts.rejections):
        return "given up"
    if held.run_id == last.run_id:
        return "exited" if held.exited else "sent"
    if last.status in ("guarded", "invalid") or (last.status == "failed" and not last.sent):
        return f"not sent: {last.status}"
    return "exited earlier" if held.exited else "unchanged"


def search(console: Console, query: str) -> dict[str, Any]:
    """Traits whose name contains ``query``, a run with that id, and a profile lookup for it."""
    config = console.config()
    text = query.strip()
    traits = [n for n in config.traits if text and text.lower() in n.lower()]
    run = None
    if text:
        with console.state(config) as state:
            found = state.run(text)
        run = run_summary(found) if found else None
    exact = text if text in config.traits else None
    return {"q": text, "traits": traits, "exact_trait": exact, "run": run, "profile": f"/profiles/{quote(text, safe='')}" if text else None}
