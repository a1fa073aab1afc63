"""Where incident risk's shared state lives (``VIGIL_INCIDENT_STATE``): what a scope does for
the pipeline (:class:`RiskScope`), and the detector-wide one (:class:`PooledScope`, the
default): one state per service group, pooled over every service of the group the detector
owns. The per-partition scope is :class:`~stream.core.risk_lanes.PartitionLanes`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from models.batch import RiskArtifact
from models.incident import HorizonLabeler, LabelledVector, PrequentialTracker, RiskConfig
from stream.core.features.risk_vectors import RiskVector
from stream.core.risk_groups import Predicted, RiskGroups

__all__ = ["EXPIRY_EVERY_S", "PooledScope", "RiskScope", "StateScope"]

StateScope = Literal["detector", "partition"]
"""Whom a group's models serve: every service of the group a detector owns, or those of one
input partition (``VIGIL_INCIDENT_STATE``)."""

EXPIRY_EVERY_S = 300.0
"""Within a batch, horizons are let pass every 5 minutes of event time (not at every vector:
each pass takes a service's due vectors out of its buffer at once)."""

Learn = Callable[[Sequence[LabelledVector]], None]
Decide = Callable[[Predicted], None]
ChampionOf = Callable[[str], RiskArtifact | None]


class RiskScope(Protocol):
    """What the pipeline asks of the place its shared state (group models, thresholds,
    budgets, trackers, expiry schedule) lives in."""

    def predict(
        self,
        vectors: list[RiskVector],
        *,
        probabilities: list[npt.NDArray[np.float64]],
        hold: bool,
        learn: Learn,
        decide: Decide,
        champion_of: ChampionOf | None,
    ) -> None:
        """Predict a batch's vectors and hand each to ``decide``, in event-time order,
        horizons passed before each learned first (with ``learn``, unless ``hold``); the
        online probabilities are appended to ``probabilities``."""
        ...

    def learn(
        self,
        items: Iterable[LabelledVector],
        during: Iterable[LabelledVector],
        on_labelled: Callable[[str, LabelledVector], None] | None,
    ) -> None:
        """Learn labelled vectors (and the vectors found inside incidents)."""
        ...

    def tracker_of(self, service: str) -> PrequentialTracker | None:
        """The prequential tracker an incident of ``service`` is told to (None: not yet)."""
        ...

    def expire(self, now_s: float, explicit: bool) -> list[list[LabelledVector]]:
        """The vectors whose horizon passed by ``now_s`` (``explicit``: a caller's time, not
        the latest event's), as learning steps."""
        ...

    def export(self, partition: int, latest_event_s: float) -> dict[str, Any]:
        """The shared state a partition's snapshot carries (``groups``, ``latest_event_s``,
        ``next_expiry_s``). Live objects."""
        ...

    def install(self, partition: int, services: Iterable[str], state: Mapping[str, Any]) -> None:
        """Take over a snapshot's shared state (from :meth:`export`)."""
        ...

    def forget(self, partitions: Iterable[int], services: Iterable[str]) -> None:
        """Drop what partitions another detector owns now held."""
        ...

    def thresholds(self) -> dict[str, tuple[float, str]]:
        """Each group's threshold in force and the strategy that set it."""
        ...

    def summaries(self, services: Container[str]) -> dict[str, dict[str, Any]]:
        """Prequential quality per group over the incidents of ``services``."""
        ...

    def describe(self, services: Container[str]) -> dict[str, dict[str, Any]]:
        """Each group as ``GET /models`` shows it."""
        ...


class PooledScope:
    """One state per group, pooled over every service of the group this detector owns.

    A batch's vectors of a group are predicted as one matrix with the models as they were
    when the batch began; horizons pass every :data:`EXPIRY_EVERY_S` of event time from the
    first vector after the previous pass, over the merged vectors of every partition. A
    restore keeps whichever of this detector's group state and the snapshot's learned more.

    Args:
        config: The incident-risk configuration every group takes.
        step_s: One risk vector per service per this much event time.
        pattern: Services are grouped by this regex (one model per group).
        labeler: The pipeline's labeler.
    """

    def __init__(
        self, config: RiskConfig, step_s: float, pattern: str | None, labeler: HorizonLabeler
    ) -> None:
        self.groups = RiskGroups(config, step_s, pattern)
        self.labeler = labeler
        self.next_expiry_s = -math.inf

    def predict(
        self,
        vectors: list[RiskVector],
        *,
        probabilities: list[npt.NDArray[np.float64]],
        hold: bool,
        learn: Learn,
        decide: Decide,
        champion_of: ChampionOf | None,
    ) -> None:
        # In event-time order, horizons that passed before each vector are settled first: a
        # batch may span more steps than a service's buffer holds (a replay, a backlog).
        predicted = sorted(
            self.groups.predict(vectors, self.labeler.in_incident, champion_of, probabilities),
            key=_ts_of_predicted,
        )
        for item in predicted:
            if not hold and item[0].ts_s >= self.next_expiry_s:
                self.next_expiry_s = item[0].ts_s + EXPIRY_EVERY_S
                expired = self.labeler.expire(item[0].ts_s)
                if expired:
                    learn(expired)
            decide(item)

    def learn(
        self,
        items: Iterable[LabelledVector],
        during: Iterable[LabelledVector],
        on_labelled: Callable[[str, LabelledVector], None] | None,
    ) -> None:
        self.groups.learn(items, during, on_labelled)

    def tracker_of(self, service: str) -> PrequentialTracker:
        return self.groups.group(self.groups.of(service)).tracker

    def expire(self, now_s: float, explicit: bool) -> list[list[LabelledVector]]:
        return [self.labeler.expire(now_s)]

    def export(self, partition: int, latest_event_s: float) -> dict[str, Any]:
        """The group models (shared by every service of a group, so each partition's
        snapshot carries them)."""
        return {
            "groups": dict(self.groups),
            "latest_event_s": latest_event_s,
            "next_expiry_s": self.next_expiry_s,
        }

    def install(self, partition: int, services: Iterable[str], state: Mapping[str, Any]) -> None:
        """A group model is taken only if this detector has none for the group or one that
        learned less (after a restart, the snapshot's; after a rebalance, whichever learned
        more)."""
        # Event time only moves on: a restore must not make horizons pass early or late.
        self.next_expiry_s = max(self.next_expiry_s, state["next_expiry_s"])
        self.groups.install(state["groups"])

    def forget(self, partitions: Iterable[int], services: Iterable[str]) -> None:
        """Nothing: the group models stay (other partitions' services share them)."""

    def thresholds(self) -> dict[str, tuple[float, str]]:
        return self.groups.thresholds()

    def summaries(self, services: Container[str]) -> dict[str, dict[str, Any]]:
        return self.groups.summaries(services)

    def describe(self, services: Container[str]) -> dict[str, dict[str, Any]]:
        return self.groups.describe(services)


def _ts_of_predicted(item: Predicted) -> float:
    return item[0].ts_s
