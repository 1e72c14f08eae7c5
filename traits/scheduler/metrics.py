"""Prometheus metrics of the runs this daemon made, in a registry of its own.

Counted once per finished run, from the same ``RunRecord`` that history stores, so the
counters agree with ``traits history`` for the runs this process made.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from traits.state.records import RunRecord

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, float("inf"))
DESTINATION_COUNTS = ("added", "changed", "exited", "sent", "failed")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter("traits_runs", "Runs finished, by trait and status", ["trait", "status"], registry=r)
        self.skipped = Counter(
            "traits_skipped_runs", "Scheduled runs not made (locked: another runner held the trait; error)", ["trait", "reason"], registry=r
        )
        self.rows = Counter("traits_rows", "Rows the trait's query returned", ["trait"], registry=r)
        self.rows_fetched = Counter(
            "traits_rows_fetched", "Rows that left the warehouse (the whole result in local mode, the changes in warehouse mode)",
            ["trait"], registry=r,
        )
        self.bytes_fetched = Counter("traits_bytes_fetched", "Arrow bytes of the rows that left the warehouse", ["trait"], registry=r)
        self.per_destination = {
            name: Counter(f"traits_{name}", f"Rows {name} (calls, for sent and failed)", ["trait", "destination"], registry=r)
            for name in DESTINATION_COUNTS
        }
        self.duration = Histogram("traits_run_duration_seconds", "Run duration", ["trait"], buckets=DURATION_BUCKETS, registry=r)
        self.last_success = Gauge("traits_last_success_timestamp_seconds", "When the trait last ended ok", ["trait"], registry=r)
        self.running = Gauge("traits_running", "Traits running now", registry=r)

    def observe(self, record: RunRecord, finished_at: float) -> None:
        self.runs.labels(record.trait, record.status).inc()
        self.rows.labels(record.trait).inc(record.rows)
        self.rows_fetched.labels(record.trait).inc(record.rows_fetched)
        self.bytes_fetched.labels(record.trait).inc(record.bytes_fetched)
        for destination, counts in record.destinations.items():
            for name, counter in self.per_destination.items():
                counter.labels(record.trait, destination).inc(getattr(counts, name))
        if record.duration is not None:
            self.duration.labels(record.trait).observe(record.duration)
        if record.status == "ok":
            self.last_success.labels(record.trait).set(finished_at)

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data
