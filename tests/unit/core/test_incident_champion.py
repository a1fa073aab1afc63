"""Incident risk following the sidecar's champion: it decides alerts, the online model learns."""

from __future__ import annotations

import numpy as np

from models.batch import fit_risk_model
from models.incident import FeatureRow, RiskConfig
from stream.core.features.risk_vectors import RiskVector
from stream.core.incident_risk import IncidentRiskPipeline, RiskOutcome
from stream.schemas import Evidence

WHERE = Evidence(topic="t", partition=0, offset=0)


def _champion():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    n = 4000
    labels = rng.random(n) < 0.05
    X = np.c_[rng.normal(size=n) + 3.0 * labels, rng.normal(size=n)]
    ids = [f"inc-{i // 10}" if y else None for i, y in enumerate(labels)]
    return fit_risk_model(["a", "b"], X, labels, np.arange(n) * 60.0, ids, horizon_s=60.0)


def _vector(ts_s: float, a: float, labels: dict[str, str] | None = None) -> RiskVector:
    row = FeatureRow(("a", "b"), np.array([a, 0.0]))
    return RiskVector("api", ts_s, row, lambda: WHERE, lambda: dict(labels or {}))


def test_the_champion_decides_the_alerts_and_explains_them() -> None:
    champion = _champion()
    pipeline = IncidentRiskPipeline(RiskConfig(open_steps=1))
    out = RiskOutcome()
    pipeline._predict([_vector(0.0, 0.0), _vector(60.0, 8.0)], out)
    assert out.alerts == []  # the online model has learned nothing: it never alerts yet

    pipeline.champion_of = lambda group: champion
    out = RiskOutcome()
    where = {"region": "eu", "host": "api-1", "deploy_recent": "true"}
    pipeline._predict([_vector(120.0, 0.0), _vector(180.0, 8.0, where)], out)
    (alert,) = out.alerts
    assert alert.labels == where  # the labels of the vector's step's last event
    assert (alert.status, alert.started_at) == ("firing", alert.event_ts)
    assert alert.event_ts.timestamp() == 180.0
    assert alert.model.name == "incident-risk-batch"
    assert alert.model.version == f"all-{champion.version}"
    assert alert.threshold == round(champion.threshold, 6)
    assert alert.explanation.top_features[0].name == "a"
    # Every vector still waits for its label, to teach the online model.
    assert len(pipeline.labeler) == 4
