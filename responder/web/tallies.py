"""Counters and histograms kept in plain numbers and turned into metric families at scrape.

prometheus_client's own take a lock, check that the metric is observable and go through its
value class on every update, about a microsecond each, several times a webhook; these add to
a number. Every update comes from the event loop's thread (the handlers, the delivery worker,
the reloader), so no lock is needed. With ``shared`` (prometheus_client's multiprocess mode,
``serve --workers``) an update must reach this process's file at once, where a scrape of any
worker sums it with the others': there every update goes to prometheus_client's own metric.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import INF, floatToGoString

from responder.web.children import CachedCounter, CachedHistogram


class Counting(Protocol):
    """One series of a counter."""

    def inc(self, amount: float = 1) -> None: ...


class Observing(Protocol):
    """One series of a histogram."""

    def observe(self, amount: float) -> None: ...


class Tally:
    """A count, as one labelled series of a counter."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount


class Spread:
    """Observations in buckets (each counted in the first whose bound holds it) and their sum."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.sum += amount
        self.counts[bisect_left(self._bounds, amount)] += 1


def _label_values(labelnames: tuple[str, ...], values: tuple[str, ...]) -> tuple[str, ...]:
    """The key of a series: as many values as names, each a string (as prometheus_client)."""
    if len(values) != len(labelnames):
        raise ValueError("Incorrect label count")
    return tuple(str(value) for value in values)


class LocalCounter:
    """A counter whose series are counted in this process and read by a scrape; the same
    series, names and values in the exposition as prometheus_client's ``Counter``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry,
        shared: bool = False,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._series: dict[tuple[str, ...], Tally] = {}
        self._shared = (
            CachedCounter(name, documentation, self.labelnames, registry=None) if shared else None
        )
        registry.register(self)
        if not self.labelnames:
            self._series[()] = Tally()  # exposed from the start, as prometheus_client does

    def labels(self, *values: str) -> Counting:
        """The series of these label values (made at its first use)."""
        if self._shared is not None:
            return self._shared.labels(*values)
        series = self._series.get(values)
        if series is None:
            key = _label_values(self.labelnames, values)
            series = self._series.setdefault(key, Tally())
        return series

    def inc(self, amount: float = 1) -> None:
        """Count on a counter without labels."""
        if self._shared is not None:
            self._shared.inc(amount)
        else:
            self._series[()].inc(amount)

    def value(self, *values: str) -> float:
        """This process's count of one series (0 for one never counted)."""
        if self._shared is not None:
            return float(self._shared.labels(*values)._value.get())
        series = self._series.get(values)
        return 0.0 if series is None else float(series.value)

    def describe(self) -> Iterable[Metric]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterable[Metric]:
        if self._shared is not None:
            return self._shared.collect()
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in list(self._series.items()):
            family.add_metric(values, series.value)
        return [family]


class LocalHistogram:
    """A histogram whose series are counted in this process and read by a scrape; the same
    series, names and values in the exposition as prometheus_client's ``Histogram``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
        shared: bool = False,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        bounds = tuple(float(bound) for bound in buckets)
        self.bounds = bounds if bounds[-1] == INF else (*bounds, INF)
        self._les = tuple(floatToGoString(bound) for bound in self.bounds)  # type: ignore[no-untyped-call]
        self._series: dict[tuple[str, ...], Spread] = {}
        self._shared = (
            CachedHistogram(name, documentation, self.labelnames, buckets=buckets, registry=None)
            if shared
            else None
        )
        registry.register(self)

    def labels(self, *values: str) -> Observing:
        """The series of these label values (made at its first use)."""
        if self._shared is not None:
            return self._shared.labels(*values)
        series = self._series.get(values)
        if series is None:
            key = _label_values(self.labelnames, values)
            series = self._series.setdefault(key, Spread(self.bounds))
        return series

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterable[Metric]:
        if self._shared is not None:
            return self._shared.collect()
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in list(self._series.items()):
            total = 0.0
            buckets = []
            for le, count in zip(self._les, series.counts, strict=True):
                total += count
                buckets.append((le, total))
            family.add_metric(values, buckets, series.sum)
        return [family]
