"""What a partition's model state is, for the keeper of one input topic.

The keeper (:class:`~stream.detector.rebalance.PartitionSnapshots`) snapshots, restores and
drops a partition's state through a :class:`PartitionModels` adapter: :class:`MetricModels`
for the metrics topic; the log side's is in :mod:`stream.detector.log_stage`.
"""

from __future__ import annotations

from typing import Any, Protocol

from models.anomaly import ServiceAnomalyModel
from models.snapshot import SnapshotError
from stream.core.incident_risk import IncidentRiskPipeline
from stream.core.pipeline import MetricPipeline

__all__ = ["MetricModels", "PartitionModels"]


class PartitionModels(Protocol):
    """What a partition's state is, for one input topic's keeper."""

    def config_ids(self) -> dict[str, str]:
        """The configuration ids a snapshot must match to be loaded."""
        ...

    def export(self, partition: int, services: list[str]) -> dict[str, Any]:
        """The state of these services of ``partition`` (live objects, captured at once)."""
        ...

    def check(self, state: Any) -> None:
        """Raise :class:`SnapshotError` (``unreadable``) if ``state`` is not what
        :meth:`export` writes."""
        ...

    def install(self, partition: int, state: dict[str, Any], stale: frozenset[str]) -> list[str]:
        """Take over a restored state, but for the families in ``stale`` (learned under a
        configuration that shapes state differently: they start fresh); returns its
        services."""
        ...

    def forget(self, partitions: list[int], services: list[str]) -> None:
        """Drop the state of partitions (and their services) another detector owns now."""
        ...


class MetricModels:
    """A metrics partition's state: its services' anomaly models and, with incident risk on,
    their risk state (plus the group models).

    Args:
        pipeline: The metric pipeline.
        risk: The incident-risk pipeline; None when incident risk is off.
    """

    def __init__(self, pipeline: MetricPipeline, risk: IncidentRiskPipeline | None) -> None:
        self.pipeline = pipeline
        self.risk = risk

    def config_ids(self) -> dict[str, str]:
        ids = {"metrics": self.pipeline.state_id}
        if self.risk is not None:
            ids["risk"] = self.risk.state_id
        return ids

    def export(self, partition: int, services: list[str]) -> dict[str, Any]:
        state: dict[str, Any] = {"metrics": self.pipeline.models_of(services)}
        if self.risk is not None:
            state["risk"] = self.risk.export(services, partition)
        return state

    def check(self, state: Any) -> None:
        models = state.get("metrics") if isinstance(state, dict) else None
        if not isinstance(models, dict) or not all(
            isinstance(s, str) and isinstance(m, ServiceAnomalyModel) for s, m in models.items()
        ):
            raise SnapshotError("unreadable", "state is not {'metrics': {service: model}, ...}")
        risk = state.get("risk")
        parts = ("features", "buffers", "groups")
        if risk is not None and (
            not isinstance(risk, dict) or not all(isinstance(risk.get(p), dict) for p in parts)
        ):
            raise SnapshotError("unreadable", "incident-risk state is not what this version writes")

    def install(self, partition: int, state: dict[str, Any], stale: frozenset[str]) -> list[str]:
        models = state["metrics"]
        if "metrics" not in stale:
            self.pipeline.install(models)
        if self.risk is not None and "risk" in state and "risk" not in stale:
            self.risk.install(state["risk"], partition)
        return list(models)

    def forget(self, partitions: list[int], services: list[str]) -> None:
        self.pipeline.forget(services)
        if self.risk is not None:
            self.risk.forget(services, partitions)
