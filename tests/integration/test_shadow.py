"""Champion and challenger decided on the detectors' shadow scores, against the real broker.

A detector (alerts following the sidecar's champion) reads three simulated days of metrics
and incidents, a day at a time; the sidecar reads the labelled vectors it publishes.

- Day 1: a deliberately poor first model (fitted on shuffled labels) is the champion: there is
  none to beat. The sidecar's own retrain then makes a real challenger, which the detector
  loads and scores in shadow.
- Day 2: once enough labelled vectors carry both scores, the challenger beats the poor
  champion by the margin and is promoted; the detector switches to it live. No alert came from
  it while it was in shadow.
- Day 3: a deliberately worse challenger (shuffled labels again) is scored in shadow; a
  restarted sidecar picks it up, rebuilds its evidence from the features topic and rejects it.
"""

from __future__ import annotations

import orjson
import pytest

from models.batch import fit_risk_model
from stream.detector.detector import Detector, topic_specs
from stream.dev.incident_sim import IncidentRecord, IncidentSimulator
from stream.dev.simulate import SimulatedEvent
from stream.kafka.topics import ensure_topics
from stream.settings import Settings
from stream.sidecar.service import Sidecar
from tests.integration.kafka_io import produce, read_all, run_until

pytestmark = pytest.mark.integration

DAY = 86_400.0


def _poor_model(sidecar: Sidecar, seed: int):  # type: ignore[no-untyped-def]
    """A risk model fitted on the window's rows with their labels inverted: it ranks the
    vectors before incidents lowest."""
    frame = sidecar.window.frame("risk:all").labelled()
    inverted = 1.0 - frame.labels
    return fit_risk_model(frame.names, frame.X, inverted, frame.ts_s, seed=seed), frame


async def test_challengers_are_scored_in_shadow_and_decided_on_it(
    test_settings: Settings,
) -> None:
    settings = test_settings.model_copy(
        update={
            "incident_scorer": "champion",
            "sidecar_window_s": 10 * DAY,
            "sidecar_retrain_s": 10**6,
            "sidecar_drift_check_s": 10**6,
            "sidecar_margin": 0.02,
            "sidecar_shadow_min_rows": 2000,
            "sidecar_shadow_min_incidents": 12,
        }
    )
    await ensure_topics(settings.bootstrap_servers, topic_specs(settings))
    sim = IncidentSimulator(services=12, interval_s=60.0, seed=5)
    items = list(sim.stream(4 * DAY))
    quarters = [items[i * len(items) // 4 : (i + 1) * len(items) // 4] for i in range(4)]
    days = [quarters[0] + quarters[1], quarters[2], quarters[3]]
    detector = Detector(settings, serve_http=False)
    sidecar = Sidecar(settings, serve_http=False)
    await detector.start()
    await sidecar.start()
    risk = detector.risk.pipeline
    assert risk is not None
    assert risk.champion_of is not None
    champion_of = risk.champion_of
    consumed = 0

    async def feed(day: list[SimulatedEvent | IncidentRecord]) -> None:
        nonlocal consumed
        metrics = [(i.service.encode(), i.to_bytes()) for i in day if isinstance(i, SimulatedEvent)]
        incidents = [
            (i.service.encode(), i.to_bytes()) for i in day if isinstance(i, IncidentRecord)
        ]
        await produce(settings.bootstrap_servers, settings.topic_metrics, metrics)
        await produce(settings.bootstrap_servers, settings.topic_incidents, incidents)
        consumed += len(metrics) + len(incidents)
        await run_until(detector, lambda: detector.counts["consumed"] >= consumed, timeout_s=120)

    async def read_features(side: Sidecar) -> None:
        idle = 0
        while idle < 3:  # until the topic is drained
            idle = idle + 1 if not await side.step(timeout_s=0.5) else 0

    async def detector_loads(version: str, *, challenger: bool) -> None:
        for _ in range(100):
            await detector.step()
            if challenger:
                loaded = detector.champions.challengers.get(("risk", "all"))
            else:
                loaded = champion_of("all")
            if loaded is not None and loaded.version == version:
                return
        pytest.fail(f"the detector did not load {version}")

    try:
        # Day 1: a poor first champion, then the sidecar's own challenger goes into shadow.
        await feed(days[0])
        await read_features(sidecar)
        poor, frame = _poor_model(sidecar, seed=1)
        first = await sidecar.consider("all", poor, frame)
        assert (first["status"], first["reason"]) == ("champion", "no_champion")
        await detector_loads(poor.version, challenger=False)
        (retrained,) = [d for d in await sidecar.retrain("manual") if d["kind"] == "risk"]
        assert (retrained["status"], retrained["reason"]) == ("challenger", "in_shadow")
        good = str(retrained["version"])
        assert sidecar.store.champion_version("risk", "all") == poor.version
        await detector_loads(good, challenger=True)

        # Day 2: scored in shadow, decided on it, promoted; the detector follows live.
        await feed(days[1])
        await read_features(sidecar)
        promoted = sidecar.describe_models()["groups"]["risk:all"]["last_decision"]
        assert promoted["version"] == good
        assert (promoted["status"], promoted["reason"]) == ("champion", "better")
        comparison = promoted["comparison"]
        assert comparison["evidence"] == "shadow"
        assert comparison["rows"] >= 2000
        assert promoted["shadow"]["incidents"] >= 12
        assert comparison["challenger_pr_auc"] >= comparison["champion_pr_auc"] + 0.02
        assert sidecar.store.champion_version("risk", "all") == good
        assert sidecar.store.challenger_version("risk", "all") is None
        shadowed = detector.registry.get_sample_value(
            "vigil_shadow_vectors_total", {"group": "all", "role": "challenger", "outcome": "tp"}
        )
        assert shadowed is not None
        assert shadowed > 0
        alerts = [
            orjson.loads(r.value)
            for r in await read_all(settings.bootstrap_servers, settings.topic_alerts)
        ]
        versions = {a["model"]["version"] for a in alerts if a["kind"] == "incident_risk"}
        assert f"all-{poor.version}" in versions, "the champion alerted"
        assert f"all-{good}" not in versions, "the challenger did not, in shadow"
        await detector_loads(good, challenger=False)
        assert ("risk", "all") not in detector.champions.challengers

        # Day 3: a worse challenger in shadow; a restarted sidecar rejects it.
        worse, frame = _poor_model(sidecar, seed=2)
        entered = await sidecar.consider("all", worse, frame)
        assert entered["status"] == "challenger"
        await detector_loads(worse.version, challenger=True)
        await sidecar.stop()
        await feed(days[2])
        sidecar = Sidecar(settings, serve_http=False)
        await sidecar.start()
        restored = sidecar.describe_models()["groups"]["risk:all"]
        assert restored["in_shadow"]["challenger"] == worse.version
        await read_features(sidecar)
        assert "risk:all" in sidecar.check_drift()  # the drift reference came back
        rejected = sidecar.describe_models()["groups"]["risk:all"]["last_decision"]
        assert rejected["version"] == worse.version
        assert (rejected["status"], rejected["reason"]) == ("rejected", "not_better")
        assert sidecar.store.champion_version("risk", "all") == good
        for _ in range(100):
            await detector.step()
            if ("risk", "all") not in detector.champions.challengers:
                break
        assert ("risk", "all") not in detector.champions.challengers
        assert champion_of("all").version == good  # type: ignore[union-attr]
    finally:
        await detector.stop()
        await sidecar.stop()

    announced = [
        (r.key, orjson.loads(r.value).get("status"))
        for r in await read_all(settings.bootstrap_servers, settings.topic_models)
    ]
    challenger_key = b"model/risk/all/challenger"
    assert announced.count((challenger_key, "challenger")) == 2
    assert announced.count((challenger_key, "decided")) == 2
    assert (b"model/risk/all/rejected", "rejected") in announced
