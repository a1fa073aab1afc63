"""The incident-risk alert threshold, tuned on recent predictions and their outcomes."""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.metrics import precision_recall_curve

from models.incident.config import RiskConfig
from models.incident.episodes import resolve_level
from models.refresh import refresh_due

__all__ = ["RiskThreshold"]

FloatArray = npt.NDArray[np.float64]

_BUDGET_WINDOW = 10  # alert_budget looks at the last 10 x tuning_window predictions
_REFRESH_EVERY = 250  # new labelled pairs (or 10x that many predictions) between recomputes
_SMALLEST = float(np.nextafter(0.0, 1.0))
_BUDGET_MIN_LABELLED = 1000  # alert_budget's quantile is over labelled vectors from here
_MIN_INCIDENTS = 5  # recall over incidents needs this many; before, recall over vectors
_INCIDENTS_KEPT = 200  # recall_at_least looks at the last 200 incidents


class _Ring:
    """The last ``size`` values of a stream."""

    def __init__(self, size: int) -> None:
        self.values = np.zeros(size)
        self.count = 0

    def extend(self, values: FloatArray) -> None:
        size = self.values.size
        values = values[-size:]
        at = (self.count + np.arange(values.size)) % size
        self.values[at] = values
        self.count += values.size

    def append(self, value: float) -> None:
        self.values[self.count % self.values.size] = value
        self.count += 1

    def recent(self) -> FloatArray:
        return self.values[: min(self.count, self.values.size)]


class RiskThreshold:
    """The probability at which incident risk alerts.

    Strategies (``config.strategy``):

    - ``episode_budget`` (the default): the threshold found by
      :class:`~models.incident.budget.EpisodeBudget` (the lowest at which the current model
      would have opened at most ``episode_budget`` episodes per service-day over the recent
      vectors), given by :meth:`set_episode_threshold`; ``inf`` (no alert) until it is known.
    - ``max_f1``: the threshold with the best F1 over the last ``tuning_window`` labelled
      (prediction, outcome) pairs.
    - ``recall_at_least``: the highest threshold that would have caught at least
      ``target_recall`` of the recent incidents (an incident is caught when any vector in
      the horizon before it reaches the threshold: one alert is enough for an operator, so
      recall is counted over incidents, not vectors). Over vectors the same target needs a
      far lower threshold: on the incident simulator, 0.8 of vectors meant an alert in
      most quarter-hours of every service. Until ``min_incidents`` incidents are known it
      falls back to recall over the labelled vectors.
    - ``alert_budget``: the ``1 - alert_budget`` quantile (an observed value) of the
      predictions of the last ``tuning_window`` labelled vectors (of the last
      ``10 x tuning_window`` predictions until 1,000 are labelled), so about that share of
      vectors alerts. Vectors inside an open incident are never labelled, so they do not
      take the budget.

    A label-based strategy falls back to ``alert_budget`` while the window holds fewer than
    ``min_positives`` positives; :attr:`strategy` says which one is in force, ``"override"``
    when ``threshold_override`` is set (it always wins). The threshold is ``inf`` before
    anything is known, and never 0: a prediction of exactly 0.0 (the model's "no evidence")
    never alerts. Values are recomputed lazily when read, once the data grew by 1/16th or by
    250 labelled pairs (2,500 predictions) since the last computation, so reading and feeding
    stay cheap.

    Args:
        config: strategy, target_recall, alert_budget, threshold_override, tuning_window and
            min_positives are used.

    Examples:
        >>> t = RiskThreshold(RiskConfig(strategy="max_f1", min_positives=2))
        >>> t.value, t.strategy
        (inf, 'alert_budget')
        >>> t.observe(np.linspace(0.0, 1.0, 101))
        >>> t.value, t.strategy
        (0.99, 'alert_budget')
        >>> for p, label in [(0.1, False), (0.2, False), (0.7, True), (0.3, False), (0.8, True)]:
        ...     t.labelled(p, label)
        >>> t.value, t.strategy
        (0.7, 'max_f1')
        >>> RiskThreshold(RiskConfig(threshold_override=0.4)).value
        0.4
    """

    def __init__(self, config: RiskConfig) -> None:
        self.config = config
        self._episode_value: float | None = None
        self._predictions = _Ring(_BUDGET_WINDOW * config.tuning_window)
        self._probabilities = _Ring(config.tuning_window)
        self._labels = _Ring(config.tuning_window)
        self._since_predictions = 0
        self._since_labels = 0
        self._base_rate: float | None = None
        self._base_rate_count = 0
        self._incidents: collections.OrderedDict[str, float] = collections.OrderedDict()
        """Recent incidents: the highest probability given to a vector in the horizon before."""
        self._strategy, self._value = self._compute()

    def observe(self, probabilities: FloatArray) -> None:
        """Every prediction made (the ``alert_budget`` strategy's population)."""
        self._predictions.extend(np.asarray(probabilities, dtype=np.float64).ravel())
        self._since_predictions += int(np.size(probabilities))

    def observe_one(self, probability: float) -> None:
        """One prediction, as :meth:`observe` takes many (a threshold read between two
        predictions then never counts the second)."""
        self._predictions.append(probability)
        self._since_predictions += 1

    def set_episode_threshold(self, value: float | None) -> None:
        """``episode_budget``'s threshold, as :class:`~models.incident.budget.EpisodeBudget`
        found it (None: not yet known)."""
        self._episode_value = value

    @property
    def base_rate(self) -> float | None:
        """The share of positives among the recent labelled vectors (None before any)."""
        if self._base_rate_count != self._labels.count:  # recomputed only after new labels
            labels = self._labels.recent()
            self._base_rate = float(labels.mean()) if labels.size else None
            self._base_rate_count = self._labels.count
        return self._base_rate

    @property
    def resolve_level(self) -> float:
        """The probability an open episode must stay under to resolve (see
        :func:`~models.incident.episodes.resolve_level`)."""
        return resolve_level(self.value, self.base_rate)

    def labelled(self, probability: float, label: bool, incident_id: str | None = None) -> None:
        """A prequential pair: the prediction made before the label, and the label (with the
        incident that made it positive, if one did)."""
        self.labelled_many([probability], [label], [incident_id])

    def labelled_many(
        self,
        probabilities: Sequence[float],
        labels: Sequence[bool],
        incident_ids: Sequence[str | None],
    ) -> None:
        """:meth:`labelled` for many pairs at once."""
        self._probabilities.extend(np.asarray(probabilities, dtype=np.float64))
        self._labels.extend(np.asarray(labels, dtype=np.float64))
        self._since_labels += len(probabilities)
        for probability, label, incident_id in zip(
            probabilities, labels, incident_ids, strict=True
        ):
            if label and incident_id is not None:
                self._incident_positive(probability, incident_id)

    def _incident_positive(self, probability: float, incident_id: str) -> None:
        """A positive of ``incident_id``: the incident's best prediction so far."""
        if incident_id not in self._incidents:
            self._since_labels += _REFRESH_EVERY  # a new incident: recompute on next read
        best = self._incidents.pop(incident_id, 0.0)
        self._incidents[incident_id] = max(best, probability)
        if len(self._incidents) > _INCIDENTS_KEPT:
            self._incidents.popitem(last=False)

    def reconfigure(self, config: RiskConfig) -> None:
        """Decide with ``config`` (its strategy, targets, override) from now on."""
        self.config = config
        self._strategy, self._value = self._compute()

    @property
    def value(self) -> float:
        """The threshold in force: alert when ``probability >= value``."""
        if self.config.threshold_override is not None:
            return self.config.threshold_override
        self._refresh_if_due()
        return self._value

    @property
    def strategy(self) -> str:
        """The strategy in force: ``override``, the configured one, or ``alert_budget``."""
        if self.config.threshold_override is not None:
            return "override"
        self._refresh_if_due()
        return self._strategy

    def peek(self) -> tuple[str, float]:
        """The strategy and threshold in force as last decided, without recomputing them: a
        view's read does not move when the next recompute comes (and with it the thresholds
        of the vectors after)."""
        if self.config.threshold_override is not None:
            return "override", self.config.threshold_override
        if self.config.strategy == "episode_budget":
            value = self._episode_value
            return "episode_budget", math.inf if value is None else value
        return self._strategy, self._value

    def _refresh_if_due(self) -> None:
        if self.config.strategy == "episode_budget":
            value = self._episode_value
            self._strategy, self._value = "episode_budget", math.inf if value is None else value
            return
        due = refresh_due(self._since_labels, self._labels.count, _REFRESH_EVERY) or refresh_due(
            self._since_predictions, self._predictions.count, _BUDGET_WINDOW * _REFRESH_EVERY
        )
        if due:
            self._since_labels = self._since_predictions = 0
            self._strategy, self._value = self._compute()

    def _compute(self) -> tuple[str, float]:
        config = self.config
        if config.strategy == "episode_budget":
            return config.strategy, math.inf if self._episode_value is None else self._episode_value
        if config.strategy == "recall_at_least" and len(self._incidents) >= _MIN_INCIDENTS:
            caught_at = np.sort(np.fromiter(self._incidents.values(), np.float64))[::-1]
            needed = math.ceil(config.target_recall * caught_at.size - 1e-9)
            return config.strategy, max(float(caught_at[max(needed, 1) - 1]), _SMALLEST)
        labels = self._labels.recent() > 0.5
        if config.strategy != "alert_budget" and labels.sum() >= config.min_positives:
            probabilities = self._probabilities.recent()
            precision, recall, thresholds = precision_recall_curve(labels, probabilities)
            precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
            if config.strategy == "max_f1":
                f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-300)
                best = int(np.argmax(f1))
            else:  # recall falls as the threshold rises: the last index still reaching it
                best = int(np.flatnonzero(recall >= config.target_recall - 1e-12)[-1])
            return config.strategy, max(float(thresholds[best]), _SMALLEST)
        # Labelled vectors are the population the budget is about: vectors inside an open
        # incident are never labelled (and score high: their first minutes, before the label
        # arrives, would otherwise take much of the budget). Until enough are labelled, all
        # predictions stand in.
        labelled = self._probabilities.recent()
        enough = labelled.size >= min(_BUDGET_MIN_LABELLED, config.tuning_window)
        predictions = labelled if enough else self._predictions.recent()
        if predictions.size == 0:
            return "alert_budget", math.inf
        # The "higher" quantile: an observed prediction, so reaching it is a real exceedance.
        index = math.ceil((predictions.size - 1) * (1.0 - config.alert_budget))
        return "alert_budget", max(float(np.partition(predictions, index)[index]), _SMALLEST)
