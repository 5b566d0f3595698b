"""The metrics counted on every batch (loop_metrics.py) keep plain numbers, no lock, and are
scraped exactly as prometheus_client's own Counter and Histogram would be."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from cuewire.loop_metrics import LoopMetrics
from cuewire.metrics import LATENCY_BUCKETS, Metrics

# on a bound (a bucket counts up to and including it), between bounds, past the last, zero
OBSERVED = [0.0, 0.001, 0.0011, 0.005, 0.3, 5.0, 7.5, 0.0049]


def scraped(registry: CollectorRegistry) -> list[str]:
    """The exposition's lines without the ``_created`` series (timestamps of creation, which
    the loop metrics do not keep)."""
    lines = generate_latest(registry).decode().splitlines()
    return [line for line in lines if "_created" not in line]


def test_the_exposition_is_prometheus_clients_own() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("t_events_total", "Events", ["type"], registry=theirs)
    histogram = Histogram("t_batch_seconds", "Per batch", buckets=LATENCY_BUCKETS, registry=theirs)
    by_cause = Histogram(
        "t_latency_seconds", "By cause", ["cause"], buckets=LATENCY_BUCKETS, registry=theirs
    )
    loop = LoopMetrics(ours)
    our_counter = loop.counter("t_events_total", "Events", ["type"])
    our_histogram = loop.histogram("t_batch_seconds", "Per batch", buckets=LATENCY_BUCKETS)
    our_by_cause = loop.histogram(
        "t_latency_seconds", "By cause", ["cause"], buckets=LATENCY_BUCKETS
    )

    assert scraped(ours) == scraped(theirs)  # before any count: unlabelled ones show zeros
    for n, value in enumerate(OBSERVED):
        kind, cause = ("click", "exit") if n % 3 else ("page_view", "idle")
        counter.labels(kind).inc()
        our_counter.labels(kind).inc()
        counter.labels(kind).inc(2.5)
        our_counter.labels(kind).inc(2.5)
        histogram.observe(value)
        our_histogram.labels().observe(value)
        by_cause.labels(cause).observe(value)
        our_by_cause.labels(cause).observe(value)
    assert scraped(ours) == scraped(theirs)
    assert 't_batch_seconds_bucket{le="0.005"} 5.0' in scraped(ours)  # 0.005 counted in its own


def test_labels_must_match_the_names() -> None:
    counter = LoopMetrics(CollectorRegistry()).counter("t_total", "T", ["rule", "outcome"])
    with pytest.raises(ValueError, match="rule"):
        counter.labels("only-one")


def test_the_app_metrics_count_batches_and_events_by_type() -> None:
    metrics = Metrics()
    metrics.batch_accepted(True, ["click", "click", "page_view"])
    metrics.batch_accepted(False, ["click"])
    metrics.batch_seconds.observe(0.003)
    text = metrics.render().decode()
    for line in (
        'cuewire_events_total{type="click"} 3.0',
        'cuewire_events_total{type="page_view"} 1.0',
        'cuewire_batches_total{decided="ahead"} 1.0',
        'cuewire_batches_total{decided="after"} 1.0',
        'cuewire_batch_seconds_bucket{le="0.005"} 1.0',
        "cuewire_batch_seconds_count 1.0",
    ):
        assert line in text.splitlines()
