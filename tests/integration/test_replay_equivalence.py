"""``vigil replay`` gives the same alerts as the live detector on the same events."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.cli import main
from stream.detector.detector import Detector
from stream.dev.simulate import MetricSimulator
from stream.settings import Settings
from tests.integration.kafka_io import produce, read_all, run_until

pytestmark = pytest.mark.integration


def comparable(alert: dict[str, object]) -> tuple[object, ...]:
    """Everything but where the event was read from and when the alert was made."""
    return tuple(
        orjson.dumps(alert[k])
        for k in (
            "alert_id",
            "kind",
            "source",
            "service",
            "event_ts",
            "score",
            "threshold",
            "severity",
            "model",
            "explanation",
        )
    )


async def test_replay_matches_live(test_settings: Settings, tmp_path: Path) -> None:
    settings = test_settings.model_copy(update={"anomaly_budget_per_day": 86.4})
    simulated = list(MetricSimulator(services=4, anomaly_rate=0.01, seed=8).events(12_000))
    detector = Detector(settings, serve_http=False)
    await detector.start()
    try:
        await produce(
            settings.bootstrap_servers,
            settings.topic_metrics,
            ((e.service.encode(), e.to_bytes()) for e in simulated),
        )
        await run_until(detector, lambda: detector.counts["scored"] >= len(simulated))
    finally:
        await detector.stop()
    live = [
        orjson.loads(r.value)
        for r in await read_all(settings.bootstrap_servers, settings.topic_alerts)
    ]

    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(e.to_bytes() + b"\n" for e in simulated))
    out = tmp_path / "alerts.jsonl"
    assert main(["replay", str(events), "--out", str(out), "--anomaly-budget-per-day", "86.4"]) == 0
    replayed = [orjson.loads(line) for line in out.read_bytes().splitlines()]

    assert len(live) >= 20
    assert sorted(map(comparable, replayed)) == sorted(map(comparable, live))
