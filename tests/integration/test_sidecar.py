"""The sidecar against the real broker: retrain, champion/challenger, drift, announcements.

Feature rows are published as detectors publish them, and challengers are decided at once on
the sidecar's holdout (``tests/integration/test_shadow.py`` decides them in shadow). Phase A:
a risk signal on ``x1``, after the sampled metric rows an older detector still sends (kind
``anomaly``): those are skipped, and the first risk model becomes the champion, the only
model fitted. Phase B: labels with no relation to the features: the challenger is no better,
and is rejected. Phase C, two days later: the signal moved from ``x1`` to ``x2``: feature
drift flags exactly those two, asks for a retrain, and the new model is promoted.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from stream.detector.detector import Detector, topic_specs
from stream.kafka.topics import ensure_topics
from stream.settings import Settings
from stream.sidecar.service import Sidecar
from tests.integration.kafka_io import produce, read_all

pytestmark = pytest.mark.integration

DAY = 86_400.0
SERVICES = ("api", "db", "web", "queue")


def _risk_rows(start_s: float, days: float, signal: str, seed: int, *, noise: bool = False):  # type: ignore[no-untyped-def]
    """A row per service per minute; 15 positives before each incident (~every 2 h)."""
    rng = np.random.default_rng(seed)
    minutes = int(days * 1440)
    rows = []
    for service in SERVICES:
        opens = np.sort(rng.uniform(0, minutes, size=max(1, minutes // 120)))
        for m in range(minutes):
            ahead = opens[(opens >= m) & (opens < m + 15)]
            label = bool(ahead.size)
            features = {name: float(rng.normal()) for name in ("x1", "x2", "x3")}
            if label and not noise:
                features[signal] += 2.5
            if noise:
                label = bool(rng.random() < 0.12)
            rows.append(
                {
                    "k": "risk",
                    "g": "all",
                    "s": service,
                    "t": start_s + 60.0 * m,
                    "f": features,
                    "y": label,
                    "i": f"{service}-{int(ahead[0])}" if label and ahead.size else None,
                }
            )
    return rows


def _anomaly_rows(start_s: float, days: float, seed: int):  # type: ignore[no-untyped-def]
    """Sampled metric rows as detectors before this version published them."""
    rng = np.random.default_rng(seed)
    n = int(days * 1440)
    return [
        {
            "k": "anomaly",
            "g": "all",
            "s": SERVICES[i % len(SERVICES)],
            "t": start_s + 60.0 * i,
            "f": {"cpu": float(rng.normal(50, 10)), "mem": float(rng.normal(0, 1))},
            "score": float(rng.random()),
        }
        for i in range(n)
    ]


async def _publish(settings: Settings, rows: list[dict[str, object]]) -> int:
    messages = [
        (b"features", orjson.dumps({"rows": rows[i : i + 2000]})) for i in range(0, len(rows), 2000)
    ]
    await produce(settings.bootstrap_servers, settings.topic_features, messages)
    return len(rows)


async def _read(sidecar: Sidecar, expected: int) -> None:
    read = 0
    for _ in range(200):
        read += await sidecar.step(timeout_s=0.5)
        if read >= expected:
            return
    pytest.fail(f"the sidecar read {read} of {expected} rows")


def _by_kind(decisions: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {d["kind"]: d for d in decisions}


async def test_retrain_reject_a_worse_challenger_promote_a_better_one_on_drift(
    test_settings: Settings,
) -> None:
    settings = test_settings.model_copy(
        update={
            "sidecar_window_s": 2 * DAY,
            "sidecar_retrain_s": 10**6,
            "sidecar_drift_check_s": 10**6,
            "sidecar_margin": 0.05,
            "sidecar_decision": "holdout",
        }
    )
    await ensure_topics(settings.bootstrap_servers, topic_specs(settings))
    t0 = 1_795_000_000.0
    sidecar = Sidecar(settings, serve_http=False)
    await sidecar.start()
    detector = Detector(
        settings.model_copy(update={"incident_scorer": "champion"}), serve_http=False
    )
    await detector.start()
    risk = detector.risk.pipeline
    assert risk is not None

    async def follows(version: object) -> None:
        for _ in range(100):
            await detector.step()
            champion = risk.champion_of("all") if risk.champion_of else None
            if champion is not None and champion.version == version:
                return
        pytest.fail(f"the detector did not switch to {version}")

    try:
        # A: an older detector's anomaly rows are skipped (published first, on the one
        # partition: read before the risk rows); the first risk model is the champion.
        await _publish(settings, _anomaly_rows(t0, 2, seed=2))
        sent = await _publish(settings, _risk_rows(t0, 2, "x1", seed=1))
        await _read(sidecar, sent)
        assert sidecar.window.groups() == ["risk:all"]
        first = _by_kind(await sidecar.retrain("manual"))
        assert list(first) == ["risk"]
        assert first["risk"]["status"] == "champion"
        assert first["risk"]["reason"] == "no_champion"
        champion = first["risk"]["version"]
        stored = sidecar.store.root / "risk" / "all" / str(champion)
        for name in (
            "model.pkl",
            "metadata.json",
            "pr_curve.png",
            "holdout_timeline.png",
            "importance.csv",
        ):
            assert (stored / name).is_file(), name
        metadata = orjson.loads((stored / "metadata.json").read_bytes())
        assert metadata["metrics"]["pr_auc"] > 3 * metadata["metrics"]["base_rate"]
        assert sidecar.check_drift()["risk:all"]["drifted"] is False
        await follows(champion)  # the running detector picked the champion up

        # B: labels unrelated to the features: the challenger does not beat the champion.
        sent = await _publish(settings, _risk_rows(t0 + 2 * DAY, 0.5, "x1", seed=3, noise=True))
        await _read(sidecar, sent)
        second = _by_kind(await sidecar.retrain("manual"))
        assert second["risk"]["status"] == "rejected"
        assert sidecar.store.champion_version("risk", "all") == champion

        # C: two days on, the signal moved from x1 to x2: a share of rows left x1's tail
        # and entered x2's, x3 is as it was.
        sent = await _publish(settings, _risk_rows(t0 + 3 * DAY, 2, "x2", seed=4))
        await _read(sidecar, sent)
        reports = sidecar.check_drift()
        assert reports["risk:all"]["drifted"] is True
        drifted = [f["name"] for f in reports["risk:all"]["features"] if f["drifted"]]
        assert drifted == ["x1", "x2"]
        await sidecar.step(timeout_s=0.1)  # the drift asked for a retrain: done at this step
        assert (
            sidecar.registry.get_sample_value(
                "vigil_sidecar_retrains_total", {"kind": "risk", "reason": "feature_drift"}
            )
            == 1.0
        )
        risk_now = sidecar.store.champion_version("risk", "all")
        assert risk_now != champion
        decision = orjson.loads(
            (sidecar.store.root / "risk" / "all" / str(risk_now) / "metadata.json").read_bytes()
        )["decision"]
        assert decision["reason"] == "better"
        comparison = decision["comparison"]
        assert comparison["challenger_pr_auc"] >= comparison["champion_pr_auc"] + 0.05
        await follows(risk_now)  # switched live, no restart

        # Roll back: the detector follows the older champion again.
        await sidecar.roll_back("risk", "all", str(champion))
        await follows(champion)
        assert detector.describe_models()["champions"]["loaded"]["risk:all"] == champion
    finally:
        await detector.stop()
        await sidecar.stop()

    # Every decision was announced on the compacted models topic.
    announced = [
        (r.key, orjson.loads(r.value)["status"])
        for r in await read_all(settings.bootstrap_servers, settings.topic_models)
    ]
    assert (b"model/risk/all", "champion") in announced
    assert (b"model/risk/all/rejected", "rejected") in announced
    assert sum(1 for key, status in announced if key == b"model/risk/all") == 3
    assert not [key for key, _ in announced if key.startswith(b"model/anomaly")]
