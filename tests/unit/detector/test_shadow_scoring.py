"""Shadow scoring: the detector's feed scores labelled vectors with champion and challenger, its
watcher follows challengers, the store keeps their pointers and drift references."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from models.batch import ShadowTally, fit_risk_model
from models.batch.risk_fit import _example
from models.incident import FeatureRow, LabelledVector
from stream.detector.champions import ChampionWatcher
from stream.detector.training_feed import TrainingFeed
from stream.sidecar.artifacts import ArtifactStore
from stream.telemetry import ChampionMetrics


class _Sent:
    """A publisher that keeps what it is asked to send."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def send_bytes(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[Any]:
        self.messages.append(value)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _inverted():  # type: ignore[no-untyped-def]
    """The example's data with its labels inverted: a deliberately poor model."""
    rng = np.random.default_rng(3)
    n = 2_000
    incident = (np.arange(n) // 20) % 21 == 20
    X = np.c_[rng.normal(size=n) + 2.5 * incident, rng.normal(size=n)]
    return fit_risk_model(["latency", "noise"], X, (~incident).astype(float), np.arange(n) * 60.0)


def _labelled(i: int, latency: float, label: bool) -> LabelledVector:
    vector = FeatureRow(("latency", "noise"), np.array([latency, 0.0], dtype=np.float32))
    return LabelledVector(
        "api", 60.0 * i, vector, 0.1, label, "", f"inc-{i}" if label else None, "horizon"
    )


async def test_labelled_vectors_carry_both_scores_only_while_a_challenger_is_in_shadow() -> None:
    good, poor = _example(), _inverted()
    publisher = _Sent()
    outcomes: dict[tuple[str, str], int] = {}
    in_shadow: tuple[Any, Any] | None = None

    def count(group: str, role: str, outcome: str, n: int) -> None:
        outcomes[(role, outcome)] = outcomes.get((role, outcome), 0) + n

    feed = TrainingFeed(
        publisher,  # type: ignore[arg-type]
        "features",
        shadow_of=lambda group: in_shadow,
        on_shadow=count,
    )
    feed.labelled("all", _labelled(0, 0.0, False))
    assert await feed.flush() == 1
    (row,) = orjson.loads(publisher.messages[-1])["rows"]
    assert "sh" not in row  # no challenger: nothing scored in shadow
    assert row["p"] == 0.1

    in_shadow = (poor, good)
    labelled = [_labelled(i, 8.0 if i % 5 == 0 else -1.0, i % 5 == 0) for i in range(1, 41)]
    for item in labelled:
        feed.labelled("all", item)
    assert await feed.flush() == 40
    rows = orjson.loads(publisher.messages[-1])["rows"]
    for row, item in zip(rows, labelled, strict=True):
        one = np.array([[item.vector["latency"], 0.0]])
        assert row["sh"][good.version] == pytest.approx(good.predict_proba(one)[0])
        assert row["sh"][poor.version] == pytest.approx(poor.predict_proba(one)[0])
    assert sum(n for (role, _), n in outcomes.items() if role == "challenger") == 40
    assert outcomes[("challenger", "tp")] == 8  # the good model flags the 8 positives
    assert outcomes.get(("champion", "tp"), 0) == 0  # the inverted one misses them

    tally = ShadowTally("risk", poor.version, good.version)
    assert sum(tally.add_row(row) for row in rows) == 40
    assert not any(tally.add_row(row) for row in rows)  # a re-published row counts once
    assert tally.incidents == 8
    decision = tally.decide(margin=0.1)
    assert (decision.promote, decision.reason, decision.evidence) == (True, "better", "shadow")


def test_messages_stay_under_the_size_limit() -> None:
    from stream.detector.training_feed import _messages

    rows = [{"k": "risk", "f": {f"x{j}": float(j) for j in range(40)}} for _ in range(3000)]
    messages = _messages(rows, 64 * 1024)
    assert all(len(m) <= 64 * 1024 for m in messages)
    assert sum(len(orjson.loads(m)["rows"]) for m in messages) == 3000


async def test_the_watcher_loads_a_challenger_and_drops_it_once_decided(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    good, poor = _example(), _inverted()
    for model in (good, poor):
        store.save(model, "all", {"status": "test"})
    watcher = ChampionWatcher(
        "unused:9092", "models", store, ChampionMetrics(CollectorRegistry()), "t"
    )

    async def announce(key: str, status: str, version: str) -> None:
        await watcher._apply(key.encode(), orjson.dumps({"status": status, "version": version}))

    await announce("model/risk/all/challenger", "challenger", good.version)
    assert watcher.shadow("all") is None  # no champion to compare with yet
    await announce("model/risk/all", "champion", poor.version)
    shadow = watcher.shadow("all")
    assert shadow is not None
    assert [m.version for m in shadow] == [poor.version, good.version]
    assert watcher.describe_challengers() == {"risk:all": good.version}
    await announce("model/risk/all/challenger", "decided", good.version)
    assert watcher.shadow("all") is None
    # A promotion announced first also ends the shadow run.
    await announce("model/risk/all/challenger", "challenger", good.version)
    await announce("model/risk/all", "champion", good.version)
    assert watcher.shadow("all") is None
    assert watcher.risk("all") is not None
    assert watcher.risk("all").version == good.version  # type: ignore[union-attr]


async def test_the_watcher_skips_an_older_sidecars_anomaly_announcements(tmp_path: Path) -> None:
    """Sidecars before this version announced an IsolationForest anomaly champion; a detector
    neither loads it (no load attempted, none failed) nor lists it, and risk models still load."""
    store = ArtifactStore(tmp_path)
    risk = _example()
    store.save(risk, "all", {"status": "champion"})
    registry = CollectorRegistry()
    watcher = ChampionWatcher("unused:9092", "models", store, ChampionMetrics(registry), "t")

    def loads(outcome: str) -> float | None:
        return registry.get_sample_value("vigil_champion_loads_total", {"outcome": outcome})

    old = {"kind": "anomaly", "group": "all", "version": "anomaly-20270115T080319Z-0a1b2c3d"}
    for key, status in (
        ("model/anomaly/all", "champion"),
        ("model/anomaly/all/rejected", "rejected"),
        ("model/anomaly/all/challenger", "challenger"),
    ):
        loaded = await watcher._apply(key.encode(), orjson.dumps({**old, "status": status}))
        assert loaded == 0
    assert watcher.champions == {}
    assert watcher.challengers == {}
    assert watcher.describe() == {}
    assert (loads("loaded"), loads("failed")) == (0.0, 0.0)  # not even tried: nothing to load

    message = {"kind": "risk", "group": "all", "version": risk.version, "status": "champion"}
    assert await watcher._apply(b"model/risk/all", orjson.dumps(message)) == 1
    assert watcher.describe() == {"risk:all": risk.version}
    assert (loads("loaded"), loads("failed")) == (1.0, 0.0)


def test_the_store_keeps_the_challenger_pointer_decisions_and_drift_reference(
    tmp_path: Path,
) -> None:
    store = ArtifactStore(tmp_path)
    model = _example()
    store.save(model, "all", {"status": "challenger"})
    assert store.groups() == [("risk", "all")]
    store.set_challenger("risk", "all", model.version)
    assert store.challenger_version("risk", "all") == model.version
    store.record_decision("risk", "all", model.version, {"status": "rejected", "reason": "x"})
    metadata = orjson.loads((tmp_path / "risk/all" / model.version / "metadata.json").read_bytes())
    assert metadata["decision"]["status"] == "rejected"
    history = (tmp_path / "risk/all/history.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["status"] for line in history] == ["challenger", "rejected"]
    store.set_challenger("risk", "all", None)
    assert store.challenger_version("risk", "all") is None

    rows = np.random.default_rng(0).normal(size=(50, 2))
    assert store.load_reference("risk", "all", model.version) is None
    store.save_reference("risk", "all", model.version, ["latency", "noise"], rows)
    reference = store.load_reference("risk", "all", model.version)
    assert reference is not None
    assert reference[0] == ["latency", "noise"]
    np.testing.assert_array_equal(reference[1], rows)
