"""Incident-risk quality you can trust: every prediction scored was made before its label.

:func:`incident_report` scores a set of (label, probability) pairs; :class:`PrequentialTracker`
keeps a bounded recent window of them as the stream runs, with the alerts raised and the
incidents opened, for lead times and alert rates.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

from models.evaluation import pr_curve
from models.incident.config import RiskConfig
from models.incident.labelled import LabelledVector

__all__ = ["IncidentReport", "PrequentialTracker", "incident_report", "reliability_table"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class IncidentReport:
    """Quality of incident-risk probabilities against their labels.

    ``pr_auc`` is the average precision (None without positives), ``roc_auc`` None unless both
    classes occur, ``brier`` None without labels. Precision, recall, F1 and the confusion
    matrix are taken at ``threshold`` (alert when ``probability >= threshold``).
    ``reliability`` has 10 equal-width bins of predicted probability, each a dict with
    ``lower``, ``upper``, ``count``, ``mean_predicted`` and ``observed_rate`` (both 0.0 in an
    empty bin). ``precision_curve`` and ``recall_curve`` are the PR curve, thinned to at most
    about 1,000 points, for plotting.
    """

    n: int
    positives: int
    base_rate: float
    pr_auc: float | None
    roc_auc: float | None
    brier: float | None
    threshold: float
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    tn: int
    fn: int
    reliability: list[dict[str, float]]
    precision_curve: FloatArray
    recall_curve: FloatArray

    def as_dict(self) -> dict[str, Any]:
        """Plain values; the curves under ``pr_curve`` (``precision``, ``recall`` lists)."""
        out: dict[str, Any] = {
            name: getattr(self, name)
            for name in self.__slots__
            if name not in ("precision_curve", "recall_curve")
        }
        out["threshold"] = self.threshold if math.isfinite(self.threshold) else None
        out["reliability"] = [dict(row) for row in self.reliability]
        out["pr_curve"] = {
            "precision": self.precision_curve.tolist(),
            "recall": self.recall_curve.tolist(),
        }
        return out


def reliability_table(labels: BoolArray, probabilities: FloatArray) -> list[dict[str, float]]:
    """Ten equal-width bins of predicted probability: count, mean predicted, observed rate.

    Examples:
        >>> rows = reliability_table(np.array([0, 1, 1], bool), np.array([0.05, 0.95, 0.92]))
        >>> [(r["lower"], r["count"], r["observed_rate"]) for r in rows if r["count"]]
        [(0.0, 1.0, 0.0), (0.9, 2.0, 1.0)]
    """
    bins = np.minimum((probabilities * 10).astype(np.int64), 9)
    rows = []
    for b in range(10):
        inside = bins == b
        count = int(inside.sum())
        rows.append(
            {
                "lower": b / 10,
                "upper": (b + 1) / 10,
                "count": float(count),
                "mean_predicted": float(probabilities[inside].mean()) if count else 0.0,
                "observed_rate": float(labels[inside].mean()) if count else 0.0,
            }
        )
    return rows


def incident_report(
    labels: npt.ArrayLike, probabilities: npt.ArrayLike, threshold: float
) -> IncidentReport:
    """Score probabilities against labels, with the operating point at ``threshold``.

    Examples:
        >>> r = incident_report([0, 0, 1, 0, 1], [0.1, 0.4, 0.8, 0.2, 0.3], threshold=0.35)
        >>> round(r.pr_auc, 3), round(r.roc_auc, 3), round(r.brier, 3), (r.tp, r.fp, r.tn, r.fn)
        (0.833, 0.833, 0.148, (1, 1, 2, 1))
        >>> round(r.precision, 2), round(r.recall, 2), r.base_rate
        (0.5, 0.5, 0.4)
    """
    y = np.asarray(labels, dtype=bool).ravel()
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError("labels and probabilities must have the same length")
    flags = p >= threshold
    tp, fp = int(np.sum(flags & y)), int(np.sum(flags & ~y))
    fn, tn = int(np.sum(~flags & y)), int(np.sum(~flags & ~y))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    positives = int(y.sum())
    curve = pr_curve(y, p)
    return IncidentReport(
        n=int(y.size),
        positives=positives,
        base_rate=positives / y.size if y.size else 0.0,
        pr_auc=curve.average_precision if curve is not None else None,
        roc_auc=float(roc_auc_score(y, p)) if 0 < positives < y.size else None,
        brier=float(np.mean((p - y) ** 2)) if y.size else None,
        threshold=float(threshold),
        precision=precision,
        recall=recall,
        f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        reliability=reliability_table(y, p),
        precision_curve=curve.precision if curve is not None else np.empty(0),
        recall_curve=curve.recall if curve is not None else np.empty(0),
    )


_KNOWN_PER_SERVICE = 16


class PrequentialTracker:
    """Bounded running quality of one model: labelled pairs, alerts and incidents.

    Keeps the last ``max_labelled`` (probability, label) pairs, the last ``max_incidents``
    incidents, and per service its risk episodes (firing alert, resolution) still open or
    resolved within the last horizon + grace (at most 64). An incident's lead time is
    ``t_open`` minus the firing alert of the first episode of its service open at some point
    of ``[t_open - H, t_open]``; an incident without one is missed. Alerts must be reported
    before the incident they warned of (as the stream does: vectors are scored as they come,
    incidents are labels that come later). ``alerts_per_day`` divides all (firing) alerts
    counted by the event time spanned by everything seen.

    Args:
        config: ``horizon_s`` and ``label_grace_s`` are used.
        max_labelled: How many recent labelled pairs the figures are computed over.
        max_incidents: How many recent incidents lead times are computed over.

    Examples:
        >>> tracker = PrequentialTracker(RiskConfig(horizon_s=600))
        >>> tracker.alert("api", 1_000.0)
        >>> tracker.incident("api", "inc-1", 1_300.0)
        >>> tracker.incident("db", "inc-2", 5_000.0)
        >>> tracker.alert("db", 6_000.0)  # an episode still open 10 minutes before inc-3
        >>> tracker.incident("db", "inc-3", 8_000.0)
        >>> s = tracker.summary(threshold=0.5)
        >>> s["incidents"], s["incidents_caught"], s["median_lead_time_s"]
        (3, 2, 1150.0)
        >>> tracker.summary(threshold=0.5, services={"db"})["incidents"]  # a detector's own
        2
    """

    def __init__(
        self, config: RiskConfig, *, max_labelled: int = 50_000, max_incidents: int = 10_000
    ) -> None:
        if max_labelled < 1 or max_incidents < 1:
            raise ValueError("max_labelled and max_incidents must be positive")
        self.config = config
        self.max_labelled = max_labelled
        self.max_incidents = max_incidents
        self._probabilities = np.zeros(max_labelled)
        self._labels = np.zeros(max_labelled, dtype=bool)
        self._count = 0
        self.alerts = 0
        self._alerts: dict[str, collections.deque[list[float]]] = {}
        """Service → its recent episodes as [firing time, resolution time (inf: open)]."""
        # incident id -> (its service, lead time in seconds or None: missed), oldest first
        self._incidents: collections.OrderedDict[str, tuple[str, float | None]] = (
            collections.OrderedDict()
        )
        # service -> its latest incidents (id, open time), for alerts that come after them
        self._known: dict[str, collections.deque[tuple[str, float]]] = {}
        self._first_s = math.inf
        self._last_s = -math.inf

    def labelled(self, item: LabelledVector) -> None:
        """A labelled vector, with the probability predicted before its label was known."""
        at = self._count % self.max_labelled
        self._probabilities[at], self._labels[at] = item.probability, item.label
        self._count += 1
        self._saw(item.ts_s)

    def alert(self, service: str, ts_s: float) -> None:
        """A risk alert (an episode's firing alert) was raised for ``service`` at ``ts_s``."""
        self.alerts += 1
        self._saw(ts_s)
        episodes = self._alerts.get(service)
        if episodes is None:
            episodes = self._alerts[service] = collections.deque(maxlen=64)
        episodes.append([ts_s, math.inf])
        keep_after_s = ts_s - self.config.horizon_s - self.config.label_grace_s
        while episodes[0][1] < keep_after_s:
            episodes.popleft()
        # An incident already known (its label read before the metrics, as after a backlog):
        # this alert may be its first warning.
        for incident_id, open_ts_s in self._known.get(service, ()):
            if open_ts_s - self.config.horizon_s <= ts_s <= open_ts_s:
                lead = open_ts_s - ts_s
                known = self._incidents.get(incident_id)
                if known is not None and (known[1] is None or lead > known[1]):
                    self._incidents[incident_id] = (service, lead)

    def resolved(self, service: str, ts_s: float) -> None:
        """The service's open risk episode resolved at ``ts_s``."""
        episodes = self._alerts.get(service)
        if episodes and episodes[-1][1] == math.inf:
            episodes[-1][1] = ts_s

    def incident(self, service: str, incident_id: str, open_ts_s: float) -> None:
        """An incident of ``service`` opened at ``open_ts_s`` (repeats of an id are ignored)."""
        if incident_id in self._incidents:
            return
        self._saw(open_ts_s)
        warned = [
            fired_s
            for fired_s, resolved_s in self._alerts.get(service, ())
            if fired_s <= open_ts_s and resolved_s >= open_ts_s - self.config.horizon_s
        ]
        self._incidents[incident_id] = (service, open_ts_s - min(warned) if warned else None)
        if len(self._incidents) > self.max_incidents:
            self._incidents.popitem(last=False)
        known = self._known.get(service)
        if known is None:
            known = self._known[service] = collections.deque(maxlen=_KNOWN_PER_SERVICE)
        known.append((incident_id, open_ts_s))

    def summary(self, threshold: float, services: Container[str] | None = None) -> dict[str, Any]:
        """Quality over the recent window at ``threshold`` (see :class:`IncidentReport`).

        Incidents count only of ``services`` when given (those a detector holds: every
        detector reads every incident, and in a fleet the others' are not its figures)."""
        n = min(self._count, self.max_labelled)
        report = incident_report(self._labels[:n], self._probabilities[:n], threshold)
        incidents = [
            lead
            for service, lead in self._incidents.values()
            if services is None or service in services
        ]
        leads = [lead for lead in incidents if lead is not None]
        span_days = (self._last_s - self._first_s) / 86_400.0
        return {
            "labelled": n,
            "labelled_total": self._count,
            "positives": report.positives,
            "base_rate": report.base_rate,
            "pr_auc": report.pr_auc,
            "brier": report.brier,
            "precision_at_threshold": report.precision,
            "recall_at_threshold": report.recall,
            "alerts": self.alerts,
            "alerts_per_day": self.alerts / span_days if span_days > 0 else None,
            "incidents": len(incidents),
            "incidents_caught": len(leads),
            "incidents_missed": len(incidents) - len(leads),
            "median_lead_time_s": float(np.median(leads)) if leads else None,
            "reliability": report.reliability,
        }

    def _saw(self, ts_s: float) -> None:
        self._first_s = min(self._first_s, ts_s)
        self._last_s = max(self._last_s, ts_s)
