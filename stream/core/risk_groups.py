"""Incident-risk service groups: services are grouped by a pattern over their names
(:func:`group_function`), and each group has its own models, threshold and prequential
tracker (:class:`_Group`); a group's vectors are predicted as one matrix
(:func:`predict_group`) and its labelled vectors learned together (:func:`learn_group`).
:class:`RiskGroups` holds a pipeline's groups."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from models.batch import RiskArtifact
from models.incident import (
    IncidentRiskModel,
    LabelledVector,
    PrequentialTracker,
    RiskConfig,
    RiskThreshold,
)
from models.incident.budget import EpisodeBudget
from stream.core.features.risk_vectors import RiskVector

__all__ = ["Predicted", "RiskGroups", "group_function", "learn_group", "predict_group"]

_REMEMBERED_GROUPS = 100_000  # service -> group memo, cleared past this many services


def group_function(pattern: str | None) -> Callable[[str], str]:
    """The service → group mapping: the first capture group of ``pattern`` (or its whole
    match), ``"all"`` without a pattern, ``"other"`` when the pattern does not match.

    Examples:
        >>> group_function(r"([a-z]+)-")("payments-eu"), group_function(None)("payments-eu")
        ('payments', 'all')
        >>> group_function(r"([a-z]+)-")("API")
        'other'
    """
    if pattern is None:
        return lambda service: "all"
    compiled = re.compile(pattern)

    def group_of(service: str) -> str:
        match = compiled.match(service)
        if match is None:
            return "other"
        return match.group(1) if compiled.groups else match.group(0)

    return group_of


class _Group:
    """One service group: its risk model, in-progress model, threshold and prequential
    tracker."""

    __slots__ = ("budget", "in_progress", "model", "threshold", "tracker")

    def __init__(self, name: str, config: RiskConfig, step_s: float) -> None:
        self.model = IncidentRiskModel(name, config)
        self.in_progress = IncidentRiskModel(f"{name}:in_progress", config)
        """Is an incident of the service already under way (its label not yet arrived)?
        Learned from the vectors inside known incidents against every labelled vector."""
        self.threshold = RiskThreshold(config)
        self.budget = EpisodeBudget(config, step_s)
        """The ``episode_budget`` strategy's search (fed only under that strategy)."""
        self.tracker = PrequentialTracker(config)

    def reconfigure(self, config: RiskConfig) -> None:
        """Take ``config``'s decisions (it shapes state as this group's did)."""
        self.model.config = self.in_progress.config = self.tracker.config = config
        self.budget.config = config
        self.threshold.reconfigure(config)

    def under_way(
        self, names: tuple[str, ...], rows: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.bool_]:
        """Whether the in-progress model holds these vectors back (all False until it has
        learned from ``min_positives`` vectors inside incidents, or with the gate off)."""
        config = self.model.config
        if not config.in_progress_gate or self.in_progress.positives < config.min_positives:
            return np.zeros(len(rows), dtype=bool)
        held: npt.NDArray[np.bool_] = self.in_progress.predict_rows(names, rows) >= 0.5
        return held

    def score_rows(
        self, names: tuple[str, ...], rows: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """The episode budget's scorer: the current models' view of recorded vectors."""
        return self.model.predict_rows(names, rows), self.under_way(names, rows)


Predicted = tuple[RiskVector, float, _Group, str, bool, bool, RiskArtifact | None, float]
"""A vector, its online probability, group and group name, whether it may alert (no incident
of its service known to be open), whether an incident is probably under way (held back),
the group's champion (when alerts follow one) and the probability that decides its alert."""


def predict_group(
    name: str,
    group: _Group,
    members: list[RiskVector],
    config: RiskConfig,
    in_incident: Callable[[str, float], bool],
    champion_of: Callable[[str], RiskArtifact | None] | None,
) -> tuple[npt.NDArray[np.float64], list[Predicted]]:
    """A group's vectors predicted as one matrix: the online model's probabilities, and
    each vector with what decides its alert. ``in_incident``: whether an incident of the
    service is known to be open at that event time."""
    features = [v.features for v in members]
    probabilities = group.model.predict_many(features)
    # The alert budget is shared among vectors that could alert: not those of a
    # service whose incident is known to be open (they score high, and never alert),
    # nor those predicted before the model was ready (it then knows nothing of risk).
    alertable = [not in_incident(v.service, v.ts_s) for v in members]
    if group.model.positives >= config.min_positives:
        group.threshold.observe(probabilities[np.array(alertable, dtype=bool)])
    # An incident probably under way (its label not read yet) holds new episodes back.
    under_way = (
        (group.in_progress.predict_many(features) >= 0.5).tolist()
        if config.in_progress_gate and group.in_progress.positives >= config.min_positives
        else itertools.repeat(False, len(members))
    )
    champion = champion_of(name) if champion_of is not None else None
    alert_ps = (
        probabilities
        if champion is None
        else champion.predict_mappings([v.features for v in members])
    )
    predicted = list(
        zip(
            members,
            probabilities.tolist(),
            itertools.repeat(group),
            itertools.repeat(name),
            alertable,
            under_way,
            itertools.repeat(champion),
            alert_ps.tolist(),
        )
    )
    return probabilities, predicted


def learn_group(
    name: str,
    group: _Group,
    members: Sequence[LabelledVector],
    gate: bool,
    on_labelled: Callable[[str, LabelledVector], None] | None,
) -> None:
    """A group learns its labelled vectors and scores their predictions (``gate``: the
    in-progress model learns them as "not inside an incident")."""
    labels = [item.label for item in members]
    vectors = [item.vector for item in members]
    group.model.learn_many(vectors, labels)
    # Risk labels are all "not inside an incident"; learned once the in-progress model
    # has seen an incident (before, it would learn one class and predict nothing).
    if gate and group.in_progress.positives:
        group.in_progress.learn_many(vectors, [False] * len(vectors))
    group.threshold.labelled_many(
        [item.probability for item in members],
        labels,
        [item.incident_id for item in members],
    )
    for item in members:
        group.tracker.labelled(item)
        if on_labelled is not None:
            on_labelled(name, item)


class RiskGroups(Mapping[str, _Group]):
    """A pipeline's service groups by name, made as their services are first seen.

    Args:
        config: The incident-risk configuration every group takes.
        step_s: One risk vector per service per this much event time.
        pattern: Services are grouped by this regex (see :func:`group_function`).
        peek: Views read thresholds as last decided (:meth:`RiskThreshold.peek`), never
            recomputing one at a view's moment.
    """

    def __init__(
        self, config: RiskConfig, step_s: float, pattern: str | None, *, peek: bool = False
    ) -> None:
        self.config = config
        self.step_s = step_s
        self.peek = peek
        self._function = group_function(pattern)
        self._names: dict[str, str] = {}
        self._groups: dict[str, _Group] = {}

    def __getitem__(self, name: str) -> _Group:
        return self._groups[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    def of(self, service: str) -> str:
        """The service's group (the pattern is matched once per service)."""
        name = self._names.get(service)
        if name is None:
            name = self._names[service] = self._function(service)
            if len(self._names) > _REMEMBERED_GROUPS:
                self._names.clear()
        return name

    def group(self, name: str) -> _Group:
        """The group of this name, made if new."""
        group = self._groups.get(name)
        if group is None:
            group = self._groups[name] = _Group(name, self.config, self.step_s)
        return group

    def predict(
        self,
        vectors: Iterable[RiskVector],
        in_incident: Callable[[str, float], bool],
        champion_of: Callable[[str], RiskArtifact | None] | None,
        probabilities: list[npt.NDArray[np.float64]],
    ) -> list[Predicted]:
        """Each group's vectors predicted as one matrix (:func:`predict_group`), with what
        decides their alerts; the online probabilities appended to ``probabilities``."""
        by_group: dict[str, list[RiskVector]] = {}
        for vector in vectors:
            by_group.setdefault(self.of(vector.service), []).append(vector)
        predicted: list[Predicted] = []
        for name, members in by_group.items():
            group = self.group(name)
            ps, items = predict_group(name, group, members, self.config, in_incident, champion_of)
            probabilities.append(ps)
            predicted += items
        return predicted

    def learn(
        self,
        items: Iterable[LabelledVector],
        during: Iterable[LabelledVector],
        on_labelled: Callable[[str, LabelledVector], None] | None,
    ) -> None:
        """Learn labelled vectors, group by group (:func:`learn_group`); the vectors found
        inside known incidents (``during``) teach the in-progress models first."""
        by_group: dict[str, list[LabelledVector]] = {}
        for item in items:
            by_group.setdefault(self.of(item.service), []).append(item)
        inside_by_group: dict[str, list[LabelledVector]] = {}
        for item in during:
            inside_by_group.setdefault(self.of(item.service), []).append(item)
        for name, inside in inside_by_group.items():
            self.group(name).in_progress.learn_many(
                [item.vector for item in inside], [True] * len(inside)
            )
        gate = self.config.in_progress_gate
        for name, members in by_group.items():
            learn_group(name, self.group(name), members, gate, on_labelled)

    def install(self, groups: Mapping[str, _Group]) -> None:
        """Take a snapshot's group models: each only if there is none of its name here or
        one that learned less; taken, it follows this configuration."""
        for name, group in groups.items():
            mine = self._groups.get(name)
            if mine is None or mine.model.updates < group.model.updates:
                group.reconfigure(self.config)
                self._groups[name] = group

    def replace(self, groups: Mapping[str, _Group]) -> None:
        """Take a snapshot's group models as they are, in place of any here; taken, they
        follow this configuration."""
        self._groups.clear()
        for name, group in groups.items():
            group.reconfigure(self.config)
            self._groups[name] = group

    def thresholds(self) -> dict[str, tuple[float, str]]:
        """Each group's threshold in force and the strategy that set it."""
        return {
            name: (value, strategy) for name, (strategy, value) in sorted(self._in_force().items())
        }

    def summaries(self, services: Container[str]) -> dict[str, dict[str, Any]]:
        """Prequential quality per group (see :class:`~models.incident.PrequentialTracker`),
        over the incidents of ``services``."""
        return {
            name: self._groups[name].tracker.summary(value, services)
            for name, (_, value) in sorted(self._in_force().items())
        }

    def describe(self, services: Container[str]) -> dict[str, dict[str, Any]]:
        """Each group as ``GET /models`` shows it (quality over the incidents of
        ``services``)."""
        out = {}
        for name, (strategy, value) in sorted(self._in_force().items()):
            group = self._groups[name]
            out[name] = {
                "version": group.model.version,
                "threshold": _finite_or_none(value),
                "strategy": strategy,
                "positives": group.model.positives,
                "negatives": group.model.negatives,
                "prequential": group.tracker.summary(value, services),
            }
        return out

    def _in_force(self) -> dict[str, tuple[str, float]]:
        """Each group's strategy and threshold in force, as views read them."""
        if self.peek:
            return {name: group.threshold.peek() for name, group in self._groups.items()}
        return {
            name: (group.threshold.strategy, group.threshold.value)
            for name, group in self._groups.items()
        }


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
