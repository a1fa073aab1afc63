"""Metric events in, explained anomaly alerts out, through the real broker."""

from __future__ import annotations

from datetime import datetime

import httpx
import orjson
import pytest

from stream.detector.detector import Detector
from stream.dev.simulate import MetricSimulator
from stream.settings import Settings
from tests.integration.kafka_io import committed_offsets, end_offsets, produce, read_all, run_until

pytestmark = pytest.mark.integration

EVENTS = 20_000


async def test_injected_anomalies_are_caught_and_explained(test_settings: Settings) -> None:
    settings = test_settings.model_copy(update={"anomaly_budget_per_day": 43.2})
    simulated = list(MetricSimulator(services=5, anomaly_rate=0.005, seed=21).events(EVENTS))
    injected = {(e.anomaly.service, e.anomaly.ts): e.anomaly for e in simulated if e.anomaly}
    detector = Detector(settings)
    await detector.start()  # creates the topics
    try:
        await produce(
            settings.bootstrap_servers,
            settings.topic_metrics,
            ((e.service.encode(), e.to_bytes()) for e in simulated),
        )
        await run_until(detector, lambda: detector.counts["scored"] >= EVENTS)
        assert detector.counts["scored"] == EVENTS
        assert detector.counts["dead_lettered"] == 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{detector.http_port}") as http:
            metrics_text = (await http.get("/metrics")).text
            models = (await http.get("/models")).json()["metrics"]
            assert (await http.get("/readyz")).status_code == 200
    finally:
        await detector.stop()

    alerts = [
        orjson.loads(r.value)
        for r in await read_all(settings.bootstrap_servers, settings.topic_alerts)
    ]
    assert len(alerts) == detector.counts["alerts"]
    firing = [a for a in alerts if a["status"] == "firing"]
    opened = {a["episode_id"] for a in firing}
    for alert in alerts:
        if alert["status"] == "resolved":  # closes an episode a firing alert opened
            assert alert["episode_id"] in opened
    caught = {}
    for alert in firing:
        key = (alert["service"], datetime.fromisoformat(alert["event_ts"]))
        if key in injected:
            caught[key] = alert
    recall = len(caught) / len(injected)
    precision = len(caught) / len(firing)
    print(
        f"\ninjected={len(injected)} firing={len(firing)} caught={len(caught)} "
        f"recall={recall:.3f} precision={precision:.3f}"
    )
    assert len(injected) >= 50
    assert recall >= 0.7
    assert precision >= 0.5
    for key, alert in caught.items():
        top = [f["name"] for f in alert["explanation"]["top_features"]]
        assert top[0] in injected[key].metrics, (alert, injected[key])
        first = alert["explanation"]["top_features"][0]
        assert first["value"] != pytest.approx(first["baseline"], rel=0.05)
    for alert in alerts:
        assert alert["kind"] == "anomaly"
        assert alert["model"]["name"] == "hst-metrics"
        assert alert["evidence"]["topic"] == settings.topic_metrics
    for alert in firing:
        assert alert["score"] >= alert["threshold"]

    # Every offset is committed, and only now that the alerts are acknowledged.
    ends = await end_offsets(settings.bootstrap_servers, settings.topic_metrics)
    committed = await committed_offsets(settings.bootstrap_servers, settings.group_id)
    assert {tp: off for tp, off in ends.items() if off} == committed
    latency_count = 'vigil_event_to_alert_latency_seconds_count{source="metrics"} '
    assert f"{latency_count}{float(len(alerts))}" in metrics_text
    assert 'vigil_models_held{source="metrics"} 5.0' in metrics_text
    assert sorted(models["services"]) == sorted({e.service for e in simulated})
    assert all(0 < m["threshold"] < 1 for m in models["services"].values())
    # The budget's volume is reported next to it (service-days of event time: 20,000 events
    # of 5 services at 10 s, 0.46 days each).
    for m in models["services"].values():
        assert m["budget_per_day"] == 43.2
        assert m["episodes_per_day"] > 0
    assert 'vigil_anomaly_budget_per_service_day{source="metrics"} 43.2' in metrics_text
