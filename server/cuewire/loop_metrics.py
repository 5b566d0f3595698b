"""Counters and histograms counted on every batch, without a lock per count.

prometheus_client's metrics guard every value with a ``threading.Lock``: ``inc()`` on a
labelled child costs ~0.3 us, ``Histogram.observe`` ~1.1 us (a lock for its sum and one for
its bucket, found by a linear scan) and ``with histogram.time():`` ~2.5 us; a firing batch
paid for five of them. The batch path counts on the event loop's thread alone, so these
metrics keep plain numbers (``observe`` finds its bucket by bisection) and hand them to the
app's registry when it is scraped (:class:`LoopMetrics`, a collector): the exposition is the
one prometheus_client writes for its own Counter and Histogram, without their ``_created``
series.

    metrics = LoopMetrics(registry)
    events = metrics.counter("cuewire_events_total", "Events accepted", ["type"])
    events.labels("click").inc()
    batch = metrics.histogram("cuewire_batch_seconds", "Time per batch", buckets=BUCKETS)
    batch.labels().observe(0.004)

Count only from the event loop's thread (the numbers are not locked).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

C = TypeVar("C")


class CounterValue:
    """One labelled child of a :class:`LoopCounter`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HistogramValue:
    """One labelled child of a :class:`LoopHistogram`: a count per bucket (not cumulative;
    the last one is +Inf) and the sum."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        # the first bound >= amount: a bucket counts the values up to and including its bound
        self.counts[bisect_left(self._bounds, amount)] += 1
        self.sum += amount


class _Family(Generic[C]):
    """A metric's labelled children, made on their first count by ``child()``."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], child: Callable[[], C]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.children: dict[tuple[str, ...], C] = {}
        self._child = child
        if not self.labelnames:  # an unlabelled metric shows 0 before its first count
            self.labels()

    def labels(self, *values: str) -> C:
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes the labels {self.labelnames}, got {values}")
            child = self.children[values] = self._child()
        return child


class LoopCounter(_Family[CounterValue]):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, labelnames, CounterValue)

    def family(self) -> Metric:
        found = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self.children.items():
            found.add_metric([str(v) for v in values], child.value)
        return found


class LoopHistogram(_Family[HistogramValue]):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
    ) -> None:
        self.bounds = tuple(float(b) for b in buckets)
        if list(self.bounds) != sorted(set(self.bounds)):
            raise ValueError(f"{name}: buckets must rise: {buckets}")
        super().__init__(name, documentation, labelnames, lambda: HistogramValue(self.bounds))

    def family(self) -> Metric:
        found = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        uppers = [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        for values, child in self.children.items():
            cumulative, buckets = 0, []
            for upper, count in zip(uppers, child.counts, strict=True):
                cumulative += count
                buckets.append((upper, float(cumulative)))
            found.add_metric([str(v) for v in values], buckets, child.sum)
        return found


class LoopMetrics:
    """The lock-free metrics of one app, registered in its registry as one collector."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._families: list[LoopCounter | LoopHistogram] = []
        registry.register(self)

    def counter(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> LoopCounter:
        found = LoopCounter(name, documentation, labelnames)
        self._families.append(found)
        return found

    def histogram(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
    ) -> LoopHistogram:
        found = LoopHistogram(name, documentation, labelnames, buckets=buckets)
        self._families.append(found)
        return found

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.family()
