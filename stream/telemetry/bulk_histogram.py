"""A Prometheus histogram that observes a whole array of values at once.

``prometheus_client``'s ``Histogram.observe`` takes one value, with a bucket scan and a locked
increment each: called per event it would cost the detector measurable throughput, as scores
come by the thousand from vectorised batches. :class:`BulkHistogram` bins an array with numpy
(``searchsorted``, ``bincount``) and exports the same series (``_bucket{le}``, ``_count``,
``_sum``) through a custom collector, the client's supported way to export values kept
elsewhere.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["BulkHistogram", "BulkHistogramChild"]


class BulkHistogramChild:
    """One label set's buckets: counts per bucket (not cumulative) and the sum."""

    __slots__ = ("_bounds", "_counts", "_lock", "_sum")

    def __init__(self, bounds: npt.NDArray[np.float64], lock: threading.Lock) -> None:
        self._bounds = bounds
        self._counts = np.zeros(len(bounds) + 1, dtype=np.int64)  # the last one is +Inf
        self._sum = 0.0
        self._lock = lock

    def observe_many(self, values: npt.ArrayLike) -> None:
        """Count every value in its bucket (``le``: the first upper bound it does not exceed).

        Non-finite values are left out: one would make the sum meaningless for good.
        """
        array = np.asarray(values, dtype=np.float64).ravel()
        if array.size == 0:
            return
        finite = np.isfinite(array)
        if not finite.all():
            array = array[finite]
        counts = np.bincount(
            np.searchsorted(self._bounds, array, side="left"), minlength=len(self._counts)
        )
        total = float(array.sum())
        with self._lock:
            self._counts += counts
            self._sum += total

    def snapshot(self) -> tuple[list[float], float]:
        """Cumulative bucket counts (the last is the count of all values) and the sum."""
        with self._lock:
            counts, total = self._counts.copy(), self._sum
        cumulative: list[float] = np.cumsum(counts).astype(np.float64).tolist()
        return cumulative, total


class BulkHistogram(Collector):
    """A histogram of ``name`` fed arrays through :meth:`BulkHistogramChild.observe_many`.

    Args:
        name: The metric's name (``_bucket``, ``_count`` and ``_sum`` series are exported).
        documentation: Its help text.
        buckets: Increasing finite upper bounds; ``+Inf`` is added.
        labelnames: Label names; children come from :meth:`labels` (without labels, the
            histogram observes itself).
        registry: Where to register (none: not registered).

    Examples:
        >>> registry = CollectorRegistry()
        >>> scores = BulkHistogram(
        ...     "demo_score", "Scores.", (0.5, 1.0), labelnames=("source",), registry=registry
        ... )
        >>> scores.labels(source="a").observe_many([0.2, 0.5, 0.7, 3.0, float("nan")])
        >>> [registry.get_sample_value("demo_score_bucket", {"source": "a", "le": le})
        ...  for le in ("0.5", "1.0", "+Inf")]
        [2.0, 3.0, 4.0]
        >>> registry.get_sample_value("demo_score_sum", {"source": "a"})
        4.4
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        *,
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
    ) -> None:
        bounds = np.asarray(buckets, dtype=np.float64)
        if bounds.size == 0 or not np.isfinite(bounds).all() or (np.diff(bounds) <= 0).any():
            raise ValueError(f"{name}: buckets must be finite and increasing: {buckets!r}")
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._bounds = bounds
        # The client's own `le` formatting (untyped in prometheus_client 0.26).
        les = [*bounds.tolist(), math.inf]
        self._les: list[str] = [floatToGoString(b) for b in les]  # type: ignore[no-untyped-call]
        self._lock = threading.Lock()
        self._children: dict[tuple[str, ...], BulkHistogramChild] = {}
        if not self.labelnames:
            self._children[()] = BulkHistogramChild(bounds, self._lock)
        if registry is not None:
            registry.register(self)

    def labels(self, **labels: str) -> BulkHistogramChild:
        """The child of these label values (created, and exported from then on, if new)."""
        if set(labels) != set(self.labelnames) or not self.labelnames:
            raise ValueError(f"{self.name}: labels are {self.labelnames}, got {sorted(labels)}")
        key = tuple(labels[name] for name in self.labelnames)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.setdefault(key, BulkHistogramChild(self._bounds, self._lock))
        return child

    def observe_many(self, values: npt.ArrayLike) -> None:
        """Observe values on a histogram without labels."""
        if self.labelnames:
            raise ValueError(f"{self.name}: observe through .labels({', '.join(self.labelnames)})")
        self._children[()].observe_many(values)

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            children = list(self._children.items())
        for key, child in children:
            cumulative, total = child.snapshot()
            family.add_metric(list(key), list(zip(self._les, cumulative, strict=True)), total)
        yield family
