"""Batch models for the sidecar: training window, fits, champion/challenger (pure).

:class:`TrainingWindow` keeps the recent labelled incident-risk vectors the detectors
published; :func:`fit_risk_model` fits versioned, picklable artifacts from them, evaluated
and tuned on a time-ordered holdout;
:func:`compare` decides whether a challenger replaces the champion, on the sidecar's holdout
or (:class:`ShadowTally`) on the detectors' shadow scores of live labelled vectors.
"""

from models.batch._shared import InsufficientDataError
from models.batch.compare import Artifact, Comparison, Evidence, Reason, compare, compare_scores
from models.batch.risk import RiskArtifact
from models.batch.risk_fit import fit_risk_model
from models.batch.shadow import ShadowTally
from models.batch.tuning import incident_best, tune_thresholds
from models.batch.window import TrainingWindow, WindowFrame

__all__ = [
    "Artifact",
    "Comparison",
    "Evidence",
    "InsufficientDataError",
    "Reason",
    "RiskArtifact",
    "ShadowTally",
    "TrainingWindow",
    "WindowFrame",
    "compare",
    "compare_scores",
    "fit_risk_model",
    "incident_best",
    "tune_thresholds",
]
