"""prometheus_client metrics whose labelled children are looked up in a dict."""

from __future__ import annotations

from typing import Any, Final, Self

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

# Children kept per metric; label values are bounded by the rules and settings, and past
# this many (a rule set reloaded many times over) ``labels()`` simply is not cached.
MAX_CACHED_CHILDREN: Final = 10_000


class _CachedLabels(MetricWrapperBase):
    """``labels(*values)`` from a dict of the children already made: prometheus_client takes
    a lock and checks the label names and values on every call, on every webhook."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._children: dict[tuple[object, ...], Self] = {}

    def labels(self, *labelvalues: object, **labelkwargs: object) -> Self:
        if labelkwargs or not labelvalues:
            return super().labels(*labelvalues, **labelkwargs)
        child = self._children.get(labelvalues)
        if child is None:
            child = super().labels(*labelvalues)
            if len(self._children) < MAX_CACHED_CHILDREN:
                self._children[labelvalues] = child
        return child

    def remove(self, *labelvalues: Any) -> None:
        self._children.clear()
        super().remove(*labelvalues)

    def remove_by_labels(self, labels: dict[str, str]) -> None:
        self._children.clear()
        super().remove_by_labels(labels)

    def clear(self) -> None:
        self._children.clear()
        super().clear()


class CachedCounter(_CachedLabels, Counter):
    """A Counter whose children are looked up in a dict."""


class CachedGauge(_CachedLabels, Gauge):
    """A Gauge whose children are looked up in a dict."""


class CachedHistogram(_CachedLabels, Histogram):
    """A Histogram whose children are looked up in a dict."""
