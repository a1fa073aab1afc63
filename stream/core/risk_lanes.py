"""Incident-risk state per input partition (``VIGIL_INCIDENT_STATE=partition``), as Kafka
Streams keeps state per task: a partition's **lane** holds the group models, thresholds,
budgets and trackers its services share, its event time and its expiry schedule. Services of
other partitions never touch it, so what a lane learns and alerts is a function of its
partition's events (and of the labels known as they come), not of which partitions share a
detector or of where fetches cut the stream.

Within a lane every vector is predicted with the models as they stand after every learning
step before it in the partition's order (the order of the events that closed the vectors'
steps), however the batch was cut: :func:`walk` predicts a group's vectors as one matrix
up to the next learning point (the next expiry pass, or a label learned when a vector is
held), and again from there when a group learned. Horizons pass on an absolute grid of event
time (every :data:`~stream.core.risk_scope.EXPIRY_EVERY_S`, at the lane's own latest
vector time), so another partition's vectors never move when a service's negatives are
learned.
"""

from __future__ import annotations

import bisect
import functools
import math
import operator
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from models.batch import RiskArtifact
from models.incident import (
    FeatureRow,
    HorizonLabeler,
    LabelledVector,
    PrequentialTracker,
    RiskConfig,
)
from stream.core.features.risk_vectors import RiskVector
from stream.core.risk_groups import Predicted, RiskGroups, _Group
from stream.core.risk_scope import EXPIRY_EVERY_S, ChampionOf, Decide, Learn

__all__ = ["Lane", "PartitionLanes", "walk"]

_BY_TS_AND_SERVICE = operator.attrgetter("ts_s", "service")
_BY_PLACE = operator.attrgetter("closed_by", "ts_s", "service")


class Lane:
    """One partition's shared risk state.

    Attributes:
        groups: Its service groups' models, thresholds, budgets and trackers.
        clock_s: Its event time: the latest vector time it walked (-inf before any).
        next_expiry_s: When horizons pass next (a point of the absolute grid).
        stale: Groups whose risk model learned since their vectors were last predicted;
            ``stale_held``: whose in-progress model alone did (not state: a walk predicts
            afresh).
    """

    __slots__ = ("clock_s", "groups", "next_expiry_s", "stale", "stale_held")

    def __init__(self, groups: RiskGroups) -> None:
        self.groups = groups
        self.clock_s = -math.inf
        self.next_expiry_s = -math.inf
        self.stale: set[str] = set()
        self.stale_held: set[str] = set()


class PartitionLanes:
    """A pipeline's lanes by partition, and which lane each service is in: the
    :class:`~stream.core.risk_scope.RiskScope` of ``VIGIL_INCIDENT_STATE=partition``.

    Args:
        config: The incident-risk configuration every group takes.
        step_s: One risk vector per service per this much event time.
        pattern: Services are grouped by this regex (one model per group and partition).
        labeler: The pipeline's labeler: its ``lanes`` are the services' lanes (its expiry
            heaps are kept per lane).
    """

    def __init__(
        self, config: RiskConfig, step_s: float, pattern: str | None, labeler: HorizonLabeler
    ) -> None:
        self.config = config
        self.step_s = step_s
        self.pattern = pattern
        self.labeler = labeler
        self.lanes: dict[int, Lane] = {}

    def lane(self, key: int) -> Lane:
        """The lane of partition ``key``, made if new."""
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = Lane(self._groups())
        return lane

    def _groups(self) -> RiskGroups:
        return RiskGroups(self.config, self.step_s, self.pattern, peek=True)

    def assign(self, service: str, key: int) -> None:
        """``service``'s events come on partition ``key``. A service new here has its known
        incidents told to its group's tracker (they may have been read before its metrics)."""
        lanes = self.labeler.lanes
        if lanes.get(service) == key:
            return
        lanes[service] = key
        self.lane(key)
        tracker = self.tracker_of(service)
        if tracker is not None:
            for incident_id, open_s in self.labeler.incidents_of(service):
                tracker.incident(service, incident_id, open_s)

    def tracker_of(self, service: str) -> PrequentialTracker | None:
        """The prequential tracker of ``service``'s group in its lane (None: no lane yet)."""
        key = self.labeler.lanes.get(service)
        lane = self.lanes.get(key) if key is not None else None
        if lane is None:
            return None
        return lane.groups.group(lane.groups.of(service)).tracker

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
        """Each lane's vectors walked in its partition's order with its own state."""
        labeler = self.labeler
        for key, members in self.split(vectors):
            found = walk(
                self.lane(key),
                members,
                config=self.config,
                hold=hold,
                expire=functools.partial(labeler.expire, lane=key),
                learn=learn,
                decide=decide,
                in_incident=labeler.in_incident,
                champion_of=champion_of,
            )
            probabilities.append(found)

    def expire(self, now_s: float, explicit: bool) -> list[list[LabelledVector]]:
        """Nothing at the latest event of a batch (that would depend on where fetches cut:
        a lane's horizons pass on its grid as its vectors come); at a caller's time, every
        lane's."""
        if not explicit:
            return []
        return [self.labeler.expire(now_s, key) for key in sorted(self.lanes)]

    def split(self, vectors: Iterable[RiskVector]) -> list[tuple[int, list[RiskVector]]]:
        """Vectors by lane (lanes in order), each lane's in its partition's order."""
        by_lane: dict[int, list[RiskVector]] = {}
        lanes = self.labeler.lanes
        for vector in vectors:
            by_lane.setdefault(lanes[vector.service], []).append(vector)
        return [(key, sorted(by_lane[key], key=_BY_PLACE)) for key in sorted(by_lane)]

    def learn(
        self,
        items: Iterable[LabelledVector],
        during: Iterable[LabelledVector],
        on_labelled: Callable[[str, LabelledVector], None] | None,
    ) -> None:
        """Each lane learns its services' labelled vectors (and vectors inside incidents);
        the groups that learned are marked stale (``stale_held``: the in-progress model
        alone learned)."""
        by_lane: dict[int, tuple[list[LabelledVector], list[LabelledVector]]] = {}
        lanes = self.labeler.lanes
        for at, found in enumerate((items, during)):
            for item in found:
                key = lanes.get(item.service)
                if key is not None:  # always: a held vector's service has its lane
                    by_lane.setdefault(key, ([], []))[at].append(item)
        for key, (mine, inside) in by_lane.items():
            lane = self.lane(key)
            lane.groups.learn(mine, inside, on_labelled)
            lane.stale.update(lane.groups.of(item.service) for item in mine)
            lane.stale_held.update(lane.groups.of(item.service) for item in inside)

    def export(self, partition: int, latest_event_s: float) -> dict[str, Any]:
        """Exactly the partition's own lane: its groups, event time and next expiry pass
        (live objects)."""
        lane = self.lanes.get(partition)
        if lane is None:
            return {"groups": {}, "latest_event_s": -math.inf, "next_expiry_s": -math.inf}
        return {
            "groups": dict(lane.groups),
            "latest_event_s": lane.clock_s,
            "next_expiry_s": lane.next_expiry_s,
        }

    def install(self, partition: int, services: Iterable[str], state: Mapping[str, Any]) -> None:
        """Take over the partition's lane as the snapshot holds it: its groups as they are
        (no merge with any state here), its event time and expiry schedule."""
        lane = self.lanes[partition] = Lane(self._groups())
        groups: Mapping[str, _Group] = state["groups"]
        lane.groups.replace(groups)
        lane.clock_s, lane.next_expiry_s = state["latest_event_s"], state["next_expiry_s"]
        lanes = self.labeler.lanes
        for service in services:
            lanes[service] = partition

    def forget(self, partitions: Iterable[int], services: Iterable[str]) -> None:
        """Drop the lanes of partitions another detector owns now, and their services'."""
        for key in partitions:
            self.lanes.pop(key, None)
            self.labeler.drop_lane(key)
        for service in services:
            self.labeler.lanes.pop(service, None)

    def thresholds(self) -> dict[str, tuple[float, str]]:
        """Each lane's groups' thresholds, as ``group@partition``."""
        return _by_lane({k: lane.groups.thresholds() for k, lane in self.lanes.items()})

    def summaries(self, services: Container[str]) -> dict[str, dict[str, Any]]:
        """Each lane's groups' prequential quality, as ``group@partition``."""
        return _by_lane({k: lane.groups.summaries(services) for k, lane in self.lanes.items()})

    def describe(self, services: Container[str]) -> dict[str, dict[str, Any]]:
        """Each lane's groups as ``GET /models`` shows them, as ``group@partition``."""
        return _by_lane({k: lane.groups.describe(services) for k, lane in self.lanes.items()})


def _by_lane(views: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    return {f"{name}@{key}": view for key in sorted(views) for name, view in views[key].items()}


def walk(
    lane: Lane,
    vectors: Sequence[RiskVector],
    *,
    config: RiskConfig,
    hold: bool,
    expire: Callable[[float], list[LabelledVector]],
    learn: Learn,
    decide: Decide,
    in_incident: Callable[[str, float], bool],
    champion_of: ChampionOf | None,
) -> npt.NDArray[np.float64]:
    """A lane's vectors, in its partition's order: horizons passed on the grid are learned,
    then each vector is predicted with its group's models as they stand, its prediction
    observed by its threshold, and ``decide`` takes it (and may learn). Returns the online
    probabilities.

    Args:
        lane: The partition's lane.
        vectors: Its vectors of a batch, in its partition's order.
        config: The incident-risk configuration.
        hold: Whether labels may wait unread (no horizon passes).
        expire: The lane's vectors whose horizon passed by an event time (negatives).
        learn: Learns labelled vectors (marking the groups that learned stale).
        decide: A predicted vector's threshold, episode and label buffer entry.
        in_incident: Whether an incident of a service is known open at an event time.
        champion_of: The sidecar's champion of a group, when alerts follow it.
    """
    passes = _expiry_passes(lane, vectors, hold)
    chunks = _Chunks(lane, vectors, sorted(passes), config, champion_of)
    probabilities = np.empty(len(vectors))
    for i, vector in enumerate(vectors):
        now_s = passes.get(i)
        if now_s is not None:
            expired = expire(now_s)
            if expired:
                learn(sorted(expired, key=_BY_TS_AND_SERVICE))
        item = chunks.item(i, not in_incident(vector.service, vector.ts_s))
        group, could_alert = item[2], item[4]
        probabilities[i] = item[1]
        # Every prediction made once the model is ready, as it is made (a threshold read
        # for this vector never counts a later one).
        if could_alert and group.model.positives >= config.min_positives:
            group.threshold.observe_one(item[1])
        decide(item)
    return probabilities


def _expiry_passes(lane: Lane, vectors: Sequence[RiskVector], hold: bool) -> dict[int, float]:
    """Where horizons pass in this walk: vector index -> the event time they pass at (the
    lane's latest vector time, once it reached the next point of the grid). Moves the
    lane's clock and schedule past the vectors."""
    clock, next_s = lane.clock_s, lane.next_expiry_s
    passes: dict[int, float] = {}
    for i, vector in enumerate(vectors):
        clock = max(clock, vector.ts_s)
        if not hold and clock >= next_s:
            passes[i] = clock
            next_s = (math.floor(clock / EXPIRY_EVERY_S) + 1) * EXPIRY_EVERY_S
    lane.clock_s, lane.next_expiry_s = clock, next_s
    return passes


_Chunk = tuple[int, int, list[float], list[bool], list[float], RiskArtifact | None]
"""A group's vectors predicted together: from and to (their ranks in the group's vectors of
the walk), probabilities, held back (in-progress), the champion, its probabilities."""


class _Chunks:
    """A walk's predictions, a group's vectors as one matrix up to the next expiry pass,
    again from a vector on when its group learned meanwhile (only whether an incident is
    under way, when only the in-progress model learned: a vector inside a known incident)."""

    def __init__(
        self,
        lane: Lane,
        vectors: Sequence[RiskVector],
        cuts: list[int],
        config: RiskConfig,
        champion_of: Callable[[str], RiskArtifact | None] | None,
    ) -> None:
        self.lane, self.vectors, self.cuts = lane, vectors, cuts
        self.config, self.champion_of = config, champion_of
        self.names = [lane.groups.of(v.service) for v in vectors]
        self.members: dict[str, list[int]] = {}
        self.rank: list[int] = []
        for i, name in enumerate(self.names):
            members = self.members.setdefault(name, [])
            self.rank.append(len(members))
            members.append(i)
        self.chunks: dict[str, _Chunk] = {}

    def item(self, i: int, could_alert: bool) -> Predicted:
        """Vector ``i`` with its prediction by its group's models as they stand."""
        name, rank, lane = self.names[i], self.rank[i], self.lane
        group = lane.groups.group(name)
        chunk = self.chunks.get(name)
        if chunk is None or rank >= chunk[1] or name in lane.stale:
            lane.stale.discard(name)
            lane.stale_held.discard(name)
            chunk = self.chunks[name] = self._predict(name, group, rank, i)
        elif name in lane.stale_held:
            lane.stale_held.discard(name)
            at, end = rank - chunk[0], chunk[1]
            held = self._held(group, self._features(name, rank, end))
            chunk = self.chunks[name] = (rank, end, chunk[2][at:], held, chunk[4][at:], chunk[5])
        at = rank - chunk[0]
        return (
            self.vectors[i],
            chunk[2][at],
            group,
            name,
            could_alert,
            chunk[3][at],
            chunk[5],
            chunk[4][at],
        )

    def _predict(self, name: str, group: _Group, rank: int, i: int) -> _Chunk:
        """The group's vectors from rank ``rank`` (vector ``i``) to the next expiry pass."""
        cut = bisect.bisect_right(self.cuts, i)
        until = self.cuts[cut] if cut < len(self.cuts) else len(self.vectors)
        end = bisect.bisect_left(self.members[name], until, lo=rank)
        features = self._features(name, rank, end)
        probabilities = group.model.predict_many(features, rowwise=True)
        champion = self.champion_of(name) if self.champion_of is not None else None
        alert_ps = probabilities if champion is None else champion.predict_mappings(features)
        held = self._held(group, features)
        return (rank, end, probabilities.tolist(), held, alert_ps.tolist(), champion)

    def _features(self, name: str, rank: int, end: int) -> list[FeatureRow]:
        return [self.vectors[m].features for m in self.members[name][rank:end]]

    def _held(self, group: _Group, features: list[FeatureRow]) -> list[bool]:
        """Whether the in-progress model holds these vectors back (probably under way)."""
        config = self.config
        if config.in_progress_gate and group.in_progress.positives >= config.min_positives:
            held: list[bool] = (
                group.in_progress.predict_many(features, rowwise=True) >= 0.5
            ).tolist()
            return held
        return [False] * len(features)
