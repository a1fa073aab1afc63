"""What a detector sends the sidecar and what it takes back, through the real broker, next to
what an older sidecar left: scored metric events are not published (only labelled risk
vectors are), and an announced anomaly champion (the IsolationForest sidecars fitted before)
is skipped while a risk champion announced after it is loaded."""

from __future__ import annotations

import orjson
import pytest

from models.batch.risk_fit import _example
from stream.detector.champions import artifact_store
from stream.detector.detector import Detector, topic_specs
from stream.dev.simulate import MetricSimulator
from stream.kafka.topics import ensure_topics
from stream.settings import Settings
from tests.integration.kafka_io import produce, read_all, run_until

pytestmark = pytest.mark.integration

EVENTS = 3_000  # at the old 1 % sample, ~30 anomaly rows


async def test_only_risk_rows_go_out_and_only_risk_models_come_in(test_settings: Settings) -> None:
    settings = test_settings
    await ensure_topics(settings.bootstrap_servers, topic_specs(settings))
    risk = _example()
    artifact_store(settings.artifact_dir, settings.group_id).save(
        risk, "all", {"status": "champion"}
    )
    old = {"kind": "anomaly", "group": "all", "version": "anomaly-20270115T080319Z-0a1b2c3d"}
    await produce(
        settings.bootstrap_servers,
        settings.topic_models,
        [
            (b"model/anomaly/all", orjson.dumps({**old, "status": "champion"})),
            (b"model/anomaly/all/rejected", orjson.dumps({**old, "status": "rejected"})),
            (
                b"model/risk/all",
                orjson.dumps({"kind": "risk", "version": risk.version, "status": "champion"}),
            ),
        ],
    )
    simulated = MetricSimulator(services=3, seed=5).events(EVENTS)
    await produce(
        settings.bootstrap_servers,
        settings.topic_metrics,
        [(e.service.encode(), e.to_bytes()) for e in simulated],
    )
    detector = Detector(settings, serve_http=False)
    await detector.start()
    try:
        await run_until(
            detector,
            lambda: detector.counts["scored"] >= EVENTS and bool(detector.champions.champions),
        )
        registry = detector.registry
        loads = {
            outcome: registry.get_sample_value("vigil_champion_loads_total", {"outcome": outcome})
            for outcome in ("loaded", "failed")
        }
        published = registry.get_sample_value("vigil_training_rows_total")
        loaded = detector.describe_models()["champions"]["loaded"]
    finally:
        await detector.stop()

    # The old anomaly announcements came first on the one partition: read, and skipped
    # without trying their artifact (which does not exist: a load would have failed).
    assert loaded == {"risk:all": risk.version}
    assert loads == {"loaded": 1.0, "failed": 0.0}
    rows = [
        row
        for record in await read_all(settings.bootstrap_servers, settings.topic_features)
        for row in orjson.loads(record.value)["rows"]
    ]
    assert {row["k"] for row in rows} <= {"risk"}
    assert published == float(len(rows))
