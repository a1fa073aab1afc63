"""The sidecar's Prometheus metrics (declarations)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["KINDS", "SidecarMetrics"]

KINDS = ("risk",)
"""The kinds of model the sidecar trains."""


class SidecarMetrics:
    """The sidecar's Prometheus metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter(
            "vigil_sidecar_rows_total", "Feature rows read.", ["kind"], registry=registry
        )
        self.bad_messages = Counter(
            "vigil_sidecar_bad_messages_total",
            "Messages on the features topic that did not decode (skipped).",
            registry=registry,
        )
        self.window_rows = Gauge(
            "vigil_sidecar_window_rows", "Rows in the training window.", ["kind"], registry=registry
        )
        self.retrains = Counter(
            "vigil_sidecar_retrains_total",
            "Models fitted, by why (schedule, manual, feature_drift).",
            ["kind", "reason"],
            registry=registry,
        )
        self.decisions = Counter(
            "vigil_sidecar_decisions_total",
            "Models decided, by status: champion (promoted), rejected, or challenger (sent to "
            "the detectors to be scored in shadow).",
            ["kind", "status"],
            registry=registry,
        )
        self.retrain_seconds = Histogram(
            "vigil_sidecar_retrain_seconds",
            "Time to fit one group's model.",
            ["kind"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.drift = Counter(
            "vigil_sidecar_drift_total",
            "Drift detected: feature distributions against the champion's training rows "
            "(signal features).",
            ["kind", "signal"],
            registry=registry,
        )
        self.drifted = Gauge(
            "vigil_sidecar_drifted_features",
            "Features drifted at the last check, over all groups.",
            ["kind"],
            registry=registry,
        )
        self.shadow_rows = Counter(
            "vigil_sidecar_shadow_rows_total",
            "Labelled vectors the detectors scored with both the champion and the challenger "
            "in shadow, counted towards the challenger's decision.",
            ["group"],
            registry=registry,
        )
        for kind in KINDS:
            self.rows.labels(kind=kind)
            self.window_rows.labels(kind=kind)
            self.drifted.labels(kind=kind)
            for status in ("champion", "rejected", "challenger"):
                self.decisions.labels(kind=kind, status=status)
            self.drift.labels(kind=kind, signal="features")
