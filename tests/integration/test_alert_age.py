"""VIGIL_MAX_ALERT_AGE_S through the real broker: a first deploy on a day of history learns
from all of it, alerts only on the last hour's events (no warm-up), and counts the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from stream.core.pipeline import MetricPipeline
from stream.detector.detector import Detector
from stream.dev.simulate import MetricSimulator
from stream.schemas import Alert, Evidence, MetricEvent
from stream.settings import Settings
from tests.integration.kafka_io import produce, read_all, run_until

pytestmark = pytest.mark.integration

SERVICES, INTERVAL_S, STEPS = 5, 120.0, 750
"""25 h of history at one sample per service every 2 minutes; the last 30 within the hour."""
MAX_AGE_S = 3600.0


async def test_history_is_learned_from_and_only_the_last_hour_alerts(
    test_settings: Settings,
) -> None:
    settings = test_settings.model_copy(
        update={
            "max_alert_age_s": MAX_AGE_S,
            "anomaly_budget_per_day": 20.0,
            "incident_risk": False,
        }
    )
    began = datetime.now(UTC)
    # The newest sample is 60 s old: every sample is 60 s away from the hour's edge.
    start = began - timedelta(seconds=INTERVAL_S * (STEPS - 1) + 60)
    sim = MetricSimulator(
        services=SERVICES,
        anomaly_rate=0.02,
        interval_s=INTERVAL_S,
        seed=11,
        start=start,
        clean_start=100,
    )
    simulated = list(sim.events(SERVICES * STEPS))
    reference = _reference_alerts(
        settings, [MetricEvent.model_validate(e.payload) for e in simulated]
    )
    detector = Detector(settings, serve_http=False)
    await detector.start()
    try:
        await produce(
            settings.bootstrap_servers,
            settings.topic_metrics,
            ((e.service.encode(), e.to_bytes()) for e in simulated),
        )
        await run_until(detector, lambda: detector.counts["scored"] >= len(simulated))
        await detector.flush_commits()
        held = detector.pipeline.describe()["services"]
        too_old = detector.registry.get_sample_value(
            "vigil_alerts_too_old_total", {"kind": "anomaly", "source": "metrics"}
        )
    finally:
        await detector.stop()
    ended = datetime.now(UTC)
    sent = {
        orjson.loads(r.value)["alert_id"]: orjson.loads(r.value)
        for r in await read_all(settings.bootstrap_servers, settings.topic_alerts)
    }

    # Learned from everything: each service's model holds all its samples.
    assert {s: held[s]["events_seen"] for s in held} == {e.service: STEPS for e in simulated}
    fresh = [a for a in reference if (ended - a.event_ts).total_seconds() <= MAX_AGE_S]
    old = [a for a in reference if (began - a.event_ts).total_seconds() > MAX_AGE_S]
    assert len(fresh) + len(old) == len(reference), "a sample sat on the edge: too slow a run"
    fresh_firing = [a for a in fresh if a.status == "firing"]
    withheld = {a.episode_id for a in old if a.status == "firing"}
    print(
        f"\nreference {len(reference)} alerts: {len(fresh_firing)} fresh firing, "
        f"{len(withheld)} episodes opened in history; sent {len(sent)}"
    )
    assert fresh_firing, "the last hour should alert: the test checks nothing otherwise"
    assert withheld, "the history should alert too"
    # The last hour alerts as a detector that had been running all along would (no warm-up);
    # history raises none, and an episode it opened does not resolve on the alerts topic.
    assert {a.alert_id for a in fresh_firing} <= set(sent)
    assert set(sent) == {a.alert_id for a in reference if a.episode_id not in withheld}
    assert too_old == len(reference) - len(sent) == detector.counts["alerts_too_old"]


def _reference_alerts(settings: Settings, events: list[MetricEvent]) -> list[Alert]:
    """Every alert of a detector with no age limit (a service's events in order: one batch
    gives the verdicts of one at a time)."""
    pipeline = MetricPipeline(settings.anomaly_config())
    evidence = Evidence(topic=settings.topic_metrics, partition=0, offset=0)
    outcome = pipeline.process_batch(events, lambda i: evidence)
    return [alert for _, alert in outcome.alerts]
