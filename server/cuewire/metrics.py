"""Prometheus collectors of one app, in the app's own registry (no import-time globals). The
ones counted on every batch are lock-free (loop_metrics.py); count those on the event loop."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .loop_metrics import LoopMetrics

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("cuewire_connections", "Open visitor connections", registry=r)
        loop = LoopMetrics(r)  # counted on every batch: no lock per count
        self.events = loop.counter("cuewire_events_total", "Events accepted", ["type"])
        self.rejected = Counter(
            "cuewire_events_rejected_total",
            "Events rejected, by code (docs/protocol.md)",
            ["code"],
            registry=r,
        )
        self.refused = Counter(
            "cuewire_connects_refused_total",
            "Socket.IO connects refused, by code (docs/protocol.md)",
            ["code"],
            registry=r,
        )
        self.connects_waiting = Gauge(
            "cuewire_connects_waiting", "Connects waiting for the store (admission)", registry=r
        )
        self.batch_seconds = loop.histogram(
            "cuewire_batch_seconds", "Time to store and evaluate one batch", buckets=LATENCY_BUCKETS
        ).labels()
        self.batches = loop.counter(
            "cuewire_batches_total",
            "Batches by how they were decided: ahead (one store round trip) or after the store"
            " returned the facts (a second one)",
            ["decided"],
        )
        self.trigger_latency = loop.histogram(
            "cuewire_trigger_latency_seconds",
            "From the qualifying behaviour (or deadline) to the prompt leaving the server",
            ["cause"],
            buckets=LATENCY_BUCKETS,
        )
        self.timer_lateness = Histogram(
            "cuewire_timer_lateness_seconds",
            "How late timers are claimed after their deadline",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.firings = loop.counter("cuewire_firings_total", "Rule outcomes", ["rule", "outcome"])
        self.store_errors = Counter(
            "cuewire_store_errors_total", "Failed store operations", ["where"], registry=r
        )

        self.inbox_sent = Counter(
            "cuewire_inbox_sent_total",
            "Messages sent to the inbox of another process (inbox.py), by kind",
            ["kind"],
            registry=r,
        )
        self.inbox_received = Counter(
            "cuewire_inbox_received_total",
            "Messages received in this process's inbox (inbox.py), by kind",
            ["kind"],
            registry=r,
        )
        self.inbox_unreachable = Counter(
            "cuewire_inbox_unreachable_total",
            "Messages not sent: the process holding the socket is gone (its inbox expired)",
            registry=r,
        )

        self.outbox = Counter(
            "cuewire_outbox_jobs_total",
            "Durable outbox jobs (outbox.py) by channel and step: put, done, retry, dead, "
            "reclaimed (taken over from a consumer whose lease ran out), revived, store_error "
            "(the store could not be read or a verdict settled: the loop waits and goes on)",
            ["channel", "step"],
            registry=r,
        )

        self.polling_forwarded = Counter(
            "cuewire_polling_forwarded_total",
            "Long-polling requests passed on to the worker that holds their session (polling.py)",
            registry=r,
        )

    def batch_accepted(self, decided_ahead: bool, event_types: Iterable[str]) -> None:
        """Count a stored batch (how it was decided) and its accepted events by type."""
        self.batches.labels("ahead" if decided_ahead else "after").inc()
        for kind in event_types:  # event types are the protocol's few
            self.events.labels(kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
