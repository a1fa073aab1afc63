"""The classes a snapshot may hold, by stable name: Vigil's online models and the river and
Drain3 objects they keep (see :mod:`models.state_codec`).

A name is fixed once a snapshot has been written with it: a class that moves or is renamed
keeps its entry's name. A class missing here cannot be snapshotted (the encoder names where
it was met in the state); one that is here but whose fields changed so that an older
snapshot lacks a field it needs is refused on restore (``unreadable``), never half-loaded.
``tests/unit/detector/test_snapshot_classes.py`` walks a real detector's state (anomaly, logs and
incident-risk families) to prove every class it holds is here.

Examples:
    >>> from models.state_codec import decode_state, encode_state, serialize_state
    >>> from models.anomaly.scaling import RobustScaler
    >>> scaler = RobustScaler(window=5)
    >>> back = decode_state(serialize_state(encode_state(scaler, SNAPSHOT_CLASSES)),
    ...     SNAPSHOT_CLASSES)
    >>> type(back).__name__, len(SNAPSHOT_CLASSES) > 40
    ('RobustScaler', True)
"""

from __future__ import annotations

import random
from typing import Any

import drain3.drain
import drain3.simple_profiler
import river.anomaly.hst
import river.linear_model
import river.optim
import river.optim.initializers
import river.optim.losses
import river.optim.schedulers
import river.preprocessing
import river.tree.padded
from river.utils import VectorDict

import models.anomaly.calibration as calibration
import models.anomaly.config as anomaly_config
import models.anomaly.core as anomaly_core
import models.anomaly.counters as counters
import models.anomaly.episodes as anomaly_episodes
import models.anomaly.hst as hst
import models.anomaly.hst_numpy as hst_numpy
import models.anomaly.jumps as jumps
import models.anomaly.memo as memo
import models.anomaly.model as anomaly_model
import models.anomaly.recency as recency
import models.anomaly.scaling as scaling
import models.anomaly.scoring as scoring
import models.anomaly.seasonal as seasonal
import models.anomaly.shifts as shifts
import models.anomaly.trees as trees
import models.incident.budget as budget
import models.incident.config as risk_config
import models.incident.episodes as risk_episodes
import models.incident.label_buffer as label_buffer
import models.incident.platt as platt
import models.incident.prequential as prequential
import models.incident.risk as risk
import models.incident.thresholds as thresholds
import stream.core.features.risk_steps as risk_steps
import stream.core.logs.features as log_features
import stream.core.logs.pipeline as log_pipeline
import stream.core.logs.rates as rates
import stream.core.logs.templates as templates
import stream.core.logs.windows as windows
import stream.core.risk_groups as risk_groups
from models.state_codec import ClassEntry, ClassRegistry, by_fields, by_state, custom
from stream.schemas import Evidence

__all__ = ["SNAPSHOT_CLASSES"]


_VIGIL = ("models.", "stream.")


def _dump_vector(vector: VectorDict[Any, Any]) -> dict[str, Any]:
    data, default, mask, _ = vector.__reduce__()[1]
    if default is not None or mask is not None:
        raise ValueError("a VectorDict with a default or a mask is not snapshotted")
    return dict(data)


def _load_random(state: tuple[Any, ...]) -> random.Random:
    rng = random.Random()
    rng.setstate(state)
    return rng


def _none() -> None:
    return None


def _nothing(_: Any) -> None:
    return None


def _empty_memo(_: Any) -> memo.Memo:
    return memo.Memo()


def _load_tree(args: list[Any]) -> trees.TreeStructure:
    return trees.TreeStructure(*args)  # validates, and makes its arrays read-only again


_FIELDS: list[tuple[type, str]] = [
    # Vigil: anomaly models
    (anomaly_model.ServiceAnomalyModel, "models.anomaly.model.ServiceAnomalyModel"),
    (anomaly_core.ScoringCore, "models.anomaly.model._ScoringCore"),
    (anomaly_config.AnomalyConfig, "models.anomaly.config.AnomalyConfig"),
    (anomaly_config.DirectionRule, "models.anomaly.config.DirectionRule"),
    (counters.CounterRates, "models.anomaly.counters.CounterRates"),
    (counters._Feature, "models.anomaly.counters._Feature"),
    (anomaly_episodes.Episode, "models.anomaly.episodes.Episode"),
    (anomaly_episodes.EpisodeTracker, "models.anomaly.episodes.EpisodeTracker"),
    (jumps.Jumps, "models.anomaly.jumps.Jumps"),
    (shifts.LevelShifts, "models.anomaly.shifts.LevelShifts"),
    (hst.RiverHST, "models.hst.RiverHST"),
    (scaling.RobustScaler, "models.scaling.RobustScaler"),
    (scaling._FeatureWindow, "models.scaling._FeatureWindow"),
    (scoring.RowScorer, "models.scoring.RowScorer"),
    (seasonal.SeasonalBaseline, "models.seasonal.SeasonalBaseline"),
    # Vigil: incident risk
    (budget.EpisodeBudget, "models.incident.budget.EpisodeBudget"),
    (budget._Series, "models.incident.budget._Series"),
    (risk_config.RiskConfig, "models.incident.config.RiskConfig"),
    (risk_episodes._Track, "models.incident.episodes._Track"),
    (label_buffer.VectorBuffer, "models.incident.labels._Buffer"),
    (label_buffer.Span, "models.incident.labels._Span"),
    (prequential.PrequentialTracker, "models.incident.prequential.PrequentialTracker"),
    (platt.PlattScaler, "models.incident.risk._PlattScaler"),
    (thresholds.RiskThreshold, "models.incident.thresholds.RiskThreshold"),
    (thresholds._Ring, "models.incident.thresholds._Ring"),
    (risk_steps.ServiceSteps, "stream.features.risk._Service"),
    (risk_steps.Step, "stream.features.risk._Step"),
    (risk_groups._Group, "stream.incident_risk._Group"),
    # Vigil: logs
    (rates.TemplateRates, "stream.logs.rates.TemplateRates"),
    (templates.ServiceTemplates, "stream.logs.templates.ServiceTemplates"),
    (templates.Template, "stream.logs.templates.Template"),
    (templates._EvictionCountingCache, "stream.logs.templates._EvictionCountingCache"),
    (windows._KeyState, "stream.logs.windows._KeyState"),
    # Drain3
    (drain3.drain.Drain, "drain3.drain.Drain"),
    (drain3.drain.LogCluster, "drain3.drain.LogCluster"),
    (drain3.drain.Node, "drain3.drain.Node"),
    (drain3.simple_profiler.NullProfiler, "drain3.simple_profiler.NullProfiler"),
    # river
    (river.anomaly.hst.HalfSpaceTrees, "river.anomaly.hst.HalfSpaceTrees"),
    (river.tree.padded.PaddedBranch, "river.tree.padded.PaddedBranch"),
    (river.tree.padded.PaddedLeaf, "river.tree.padded.PaddedLeaf"),
    (river.linear_model.LogisticRegression, "river.linear_model.log_reg.LogisticRegression"),
    (river.optim.SGD, "river.optim.sgd.SGD"),
    (river.optim.initializers.Zeros, "river.optim.initializers.Zeros"),
    (river.optim.losses.Log, "river.optim.losses.Log"),
    (river.optim.schedulers.Constant, "river.optim.schedulers.Constant"),
]

_ENTRIES: list[ClassEntry] = [
    # Vigil's own classes set every attribute in __init__: a snapshot lacking one is refused.
    *(by_fields(cls, name, from_init=name.startswith(_VIGIL)) for cls, name in _FIELDS),
    # Attributes added since schema 2's fixture was written: an older snapshot's objects
    # stand for "not known" (their alerts carried no such label).
    by_fields(
        risk_steps.Located,
        "stream.features.risk._Located",
        from_init=True,
        added={"found_labels": dict},
    ),
    by_fields(
        log_features.WindowStats,
        "stream.logs.features.WindowStats",
        from_init=True,
        added={"host": _none},
    ),
    by_fields(
        log_pipeline._Service,
        "stream.logs.pipeline._Service",
        from_init=True,
        added={"last_host": _none},
    ),
    # A calibration from before recency weights takes the default from its next refresh.
    by_fields(
        calibration.ScoreCalibrator,
        "models.anomaly.calibration.ScoreCalibrator",
        from_init=True,
        added={"recency": lambda: recency.RECENCY},
    ),
    # Their own __getstate__ says what their state is (caches left out, shared trees named).
    by_state(hst_numpy.BatchHST, "models.hst_numpy.BatchHST"),
    by_state(risk.IncidentRiskModel, "models.incident.risk.IncidentRiskModel"),
    by_state(river.preprocessing.StandardScaler, "river.preprocessing.scale.StandardScaler"),
    custom(
        trees.TreeStructure,
        "models.trees.TreeStructure",
        lambda tree: list(tree.__reduce__()[1]),
        _load_tree,
    ),
    # What a part derives from its state and keeps between calls: written as nothing, read
    # back empty (it is rebuilt from the state when needed).
    custom(memo.Memo, "models.anomaly.memo.Memo", _nothing, _empty_memo),
    custom(random.Random, "random.Random", lambda rng: rng.getstate(), _load_random),
    custom(VectorDict, "river.utils.VectorDict", _dump_vector, VectorDict),
    custom(
        Evidence,
        "stream.schemas.Evidence",
        lambda evidence: evidence.model_dump(),
        Evidence.model_validate,
    ),
]

SNAPSHOT_CLASSES = ClassRegistry(_ENTRIES)
"""Every class a snapshot may hold."""
