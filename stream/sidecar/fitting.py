"""Fitting a group's risk model from the labelled rows of its training window.

A balanced logistic regression per group, tuned and evaluated on a time-ordered holdout
(:func:`models.batch.fit_risk_model`), under the detectors' incident-risk settings.
"""

from __future__ import annotations

from models.batch import Artifact, TrainingWindow, WindowFrame, fit_risk_model
from stream.settings import Settings

__all__ = ["MIN_ROWS", "fit_group"]

MIN_ROWS = 200
"""A group needs this many labelled rows to be fitted."""


def fit_group(
    window: TrainingWindow, key: str, settings: Settings
) -> tuple[Artifact, WindowFrame] | None:
    """A fresh model of group ``key`` and the labelled rows it was fitted from; None when the
    group has fewer than :data:`MIN_ROWS` (raises
    :class:`~models.batch.InsufficientDataError` when the rows cannot make a model)."""
    frame = window.frame(key).labelled()
    if len(frame.ts_s) < MIN_ROWS:
        return None
    # A champion is a per-vector model tuned on a holdout of labelled vectors, with no
    # per-service series to count episodes over: under episode_budget it keeps to the
    # per-vector alert_budget (its alerts still come as episodes in the detector).
    strategy = settings.incident_strategy
    if strategy == "episode_budget":
        strategy = "alert_budget"
    artifact = fit_risk_model(
        frame.names,
        frame.X,
        frame.labels,
        frame.ts_s,
        frame.incident_ids,
        strategy=strategy,
        target_recall=settings.incident_target_recall,
        alert_budget=settings.incident_alert_budget,
        horizon_s=settings.incident_horizon_s,
    )
    return artifact, frame
