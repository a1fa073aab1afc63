"""Metric events to feature dicts (pure)."""

from __future__ import annotations

from stream.schemas import MetricSample

__all__ = ["metric_features"]


def metric_features(event: MetricSample) -> dict[str, float]:
    """The feature dict of a metric event: each metric by name, as a float.

    Examples:
        >>> from stream.schemas import MetricEvent
        >>> e = MetricEvent.model_validate(
        ...     {"ts": 0, "service": "api", "metrics": {"cpu_p95": 72, "latency_p95": 420.5}}
        ... )
        >>> metric_features(e)
        {'cpu_p95': 72.0, 'latency_p95': 420.5}
    """
    return {name: float(value) for name, value in event.metrics.items()}
