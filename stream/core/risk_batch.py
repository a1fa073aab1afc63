"""A scored metric batch as the risk features read it: each service's rows and deviations,
each row's score over its threshold, its deploy flag, and where each row is stored
(:class:`BatchRows`, asked only for a step's last row)."""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np

from stream.core.features.risk import RiskFeatureBuilder, ServiceBatch
from stream.core.features.risk_vectors import RiskVector
from stream.core.pipeline import BatchOutcome, EvidenceOf, labels_of
from stream.schemas import Evidence, MetricSample

__all__ = ["BatchRows", "add_metric_batch"]

_DEPLOY_RECENT = operator.attrgetter("deploy_recent")


def add_metric_batch(
    features: RiskFeatureBuilder,
    events: Sequence[MetricSample],
    outcome: BatchOutcome,
    evidence: EvidenceOf,
) -> list[RiskVector]:
    """Fold a scored metric batch into ``features``; return the vectors of the steps it
    closed. A row's ratio is its score over its threshold (0 while its model warms up or has
    no finite threshold)."""
    # Whole-batch arrays once; the builder takes every service's rows at once.
    usable = ~outcome.warming_up & np.isfinite(outcome.thresholds)
    ratios = np.zeros(len(events))
    np.divide(outcome.scores, np.maximum(outcome.thresholds, 1e-12), out=ratios, where=usable)
    deploys = np.fromiter(map(_DEPLOY_RECENT, events), np.bool_, len(events))
    batch = [
        ServiceBatch(rows.service, rows.indices, rows.ts_s, rows.verdict.deviations)
        for rows in outcome.by_service
    ]
    located = BatchRows(events, evidence)
    return features.add_batch(batch, ratios, outcome.flagged, deploys, located)


class BatchRows:
    """A metric batch's rows as the risk steps look them up: where row ``i`` is stored
    (called), and its event's labels (:meth:`labels`). Asked only for a step's last row, and
    only when its vector alerts (or a snapshot takes an open step)."""

    __slots__ = ("_events", "_evidence")

    def __init__(self, events: Sequence[MetricSample], evidence: EvidenceOf) -> None:
        # A copy: a step that stays open asks after the batch, and callers reuse their list
        # (replay clears it); a pointer per event, no lookup.
        self._events = tuple(events)
        self._evidence = evidence

    def __call__(self, row: int) -> Evidence:
        return self._evidence(row)

    def labels(self, row: int) -> dict[str, str]:
        """The labels a metric alert on row ``row``'s event would carry."""
        return labels_of(self._events[row])
