"""Incident risk through the real broker: metrics and late incident labels in, risk alerts out.

Services whose incidents are mostly preceded by precursors (memory creep, latency drift, error
growth, deploys) are published to the metrics topic, their IncidentEvents to the incidents
topic. The detector learns from the labels as they settle and is scored prequentially: each
vector's probability was predicted before the model learned from it.
"""

from __future__ import annotations

import statistics

import orjson
import pytest

from stream.consumer import Detector
from stream.incident_sim import IncidentRecord, IncidentSimulator
from stream.settings import Settings
from stream.simulate import SimulatedEvent
from tests.integration.kafka_io import produce, read_all, run_until

pytestmark = pytest.mark.integration

DAYS = 3.0
SERVICES = 12


async def test_risk_model_beats_the_base_rate_and_warns_ahead(test_settings: Settings) -> None:
    sim = IncidentSimulator(services=SERVICES, interval_s=30.0, seed=21)
    items = list(sim.stream(DAYS * 86_400))
    metrics = [(i.service.encode(), i.to_bytes()) for i in items if isinstance(i, SimulatedEvent)]
    incidents = [(i.service.encode(), i.to_bytes()) for i in items if isinstance(i, IncidentRecord)]
    settings = test_settings
    detector = Detector(settings)
    await detector.start()
    try:
        await produce(settings.bootstrap_servers, settings.topic_metrics, metrics)
        await produce(settings.bootstrap_servers, settings.topic_incidents, incidents)
        pipeline = detector.risk.pipeline
        assert pipeline is not None
        await run_until(
            detector,
            lambda: detector.counts["consumed"] >= len(metrics) + len(incidents),
            timeout_s=240.0,
        )
        await detector.step()  # horizons due at the last event time pass
        await detector.flush_commits()
    finally:
        await detector.stop()

    summary = pipeline.summaries()["all"]
    print("\nincident risk (prequential):", orjson.dumps(summary).decode())
    print("labels:", dict(pipeline.labeler.counts), "incidents:", len(sim.incidents))
    base_rate = summary["base_rate"]
    assert 0.01 < base_rate < 0.08
    assert summary["pr_auc"] >= 3 * base_rate
    assert summary["incidents_caught"] >= 1
    assert summary["median_lead_time_s"] > 0
    assert pipeline.labeler.counts["positive"] > 0
    assert pipeline.labeler.counts["negative"] > 0

    alerts = [
        orjson.loads(r.value)
        for r in await read_all(settings.bootstrap_servers, settings.topic_alerts)
    ]
    risk = [a for a in alerts if a["kind"] == "incident_risk"]
    assert risk, "no incident-risk alert was published"
    for alert in risk:
        assert 0.0 <= alert["score"] <= 1.0
        assert alert["score"] >= alert["threshold"]
        assert alert["threshold_strategy"] in ("recall_at_least", "alert_budget")
        assert alert["horizon_s"] == settings.incident_horizon_s
        assert 1 <= len(alert["explanation"]["top_features"]) <= 5
    days = DAYS * SERVICES
    print(f"risk alerts: {len(risk)} ({len(risk) / days:.1f} per service-day)")
    leads = [s for s in (summary.get("lead_times_s") or []) if s is not None]
    if leads:
        print("median lead time (s):", statistics.median(leads))
