"""Snapshot format and store: round trips keep scores, damage and incompatibility are refused.

The state codec itself (JSON and npz) is tested in ``test_state_codec.py``; reading the v2
fixture written by an earlier version in ``test_snapshot_fixtures.py``."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from models.anomaly.scaling import RobustScaler
from models.snapshot import (
    SnapshotError,
    SnapshotMeta,
    decode_snapshot,
    encode_snapshot,
    read_meta,
)
from models.state_codec import ClassRegistry
from stream.core.incident_risk import IncidentRiskPipeline
from stream.core.logs import LogPipeline
from stream.core.pipeline import MetricPipeline
from stream.core.risk_settings import build_risk_pipeline
from stream.detector.snapshot_classes import SNAPSHOT_CLASSES
from stream.detector.snapshots import SnapshotStore
from stream.dev.incident_sim import IncidentSimulator
from stream.dev.log_simulate import LogSimulator, rotating_incidents
from stream.dev.simulate import MetricSimulator
from stream.offline.replay import replay
from stream.schemas import Evidence, MetricEvent
from stream.settings import Settings

TOPIC = "vigil.metrics"


def _trained(engine: str = "numpy") -> tuple[MetricPipeline, list[MetricEvent]]:
    settings = Settings(engine=engine, warmup_events=100)
    events = [
        MetricEvent.model_validate(e.payload)
        for e in MetricSimulator(services=3, seed=7, anomaly_rate=0.02).events(1800)
    ]
    pipeline = MetricPipeline(settings.anomaly_config())
    pipeline.process_batch(events[:1200], lambda i: Evidence(topic=TOPIC, partition=0, offset=i))
    return pipeline, events[1200:]


def _meta(offset: int = 1200, **changes: object) -> SnapshotMeta:
    meta = SnapshotMeta.create(
        topic=TOPIC,
        partition=0,
        offsets={f"{TOPIC}:0": offset},
        config_ids={"metrics": "cfg"},
        services=["svc-0"],
    )
    return dataclasses.replace(meta, **changes)  # type: ignore[arg-type]  # test overrides


def _encode(meta: SnapshotMeta, state: object) -> bytes:
    return encode_snapshot(meta, state, SNAPSHOT_CLASSES)


def _decode(blob: bytes, config_ids: dict[str, str]) -> tuple[SnapshotMeta, object]:
    return decode_snapshot(blob, config_ids=config_ids, classes=SNAPSHOT_CLASSES)


def _scores(pipeline: MetricPipeline, events: list[MetricEvent]) -> np.ndarray:
    outcome = pipeline.process_batch(
        events, lambda i: Evidence(topic=TOPIC, partition=0, offset=i), learn=True
    )
    return outcome.scores


@pytest.mark.parametrize("engine", ["numpy", "river"])
def test_round_trip_scores_and_learns_identically(engine: str) -> None:
    pipeline, rest = _trained(engine)
    services = [m.service for m in pipeline]
    blob = _encode(_meta(), {"metrics": pipeline.models_of(services)})
    _, state = _decode(blob, {"metrics": "cfg"})
    restored = MetricPipeline(pipeline.config)
    restored.install(state["metrics"])
    # Same scores while both keep learning the same events: the whole state came back.
    np.testing.assert_array_equal(_scores(restored, rest), _scores(pipeline, rest))


def test_damage_is_refused_before_decoding() -> None:
    blob = _encode(_meta(), {"x": 1})
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x01
    for damaged in (bytes(flipped), blob[:-10], b"", b"not a snapshot at all" * 3):
        with pytest.raises(SnapshotError) as caught:
            _decode(damaged, {})
        assert caught.value.reason == "corrupt"


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        (_meta(schema_version=99), "schema"),
        (_meta(config_ids={"metrics": "other"}), "config_changed"),
    ],
)
def test_incompatible_snapshots_are_refused(meta: SnapshotMeta, reason: str) -> None:
    with pytest.raises(SnapshotError) as caught:
        _decode(_encode(meta, {"x": 1}), {"metrics": "cfg"})
    assert caught.value.reason == reason


def test_another_python_or_river_version_is_no_reason_to_refuse() -> None:
    # The payload is plain data: what another version wrote loads (its versions are recorded).
    meta = _meta(libraries={"python": "3.99", "numpy": "9.0", "river": "9.9"})
    loaded, state = _decode(_encode(meta, {"x": [1.5]}), {"metrics": "cfg"})
    assert state == {"x": [1.5]}
    assert loaded.libraries["river"] == "9.9"


def _reframed(blob: bytes, payload: bytes, **header: object) -> bytes:
    """``blob`` with another payload (and header fields), its checksum made to hold."""
    (length,) = struct.unpack_from(">I", blob, 10)
    fields = {**json.loads(blob[14 : 14 + length]), **header}
    text = json.dumps(fields).encode()
    body = blob[:10] + struct.pack(">I", len(text)) + text + payload
    return body + hashlib.sha256(body).digest()


def test_a_version_1_pickle_snapshot_is_refused_as_schema() -> None:
    # What version 1 wrote: the same frame around a pickle. It is refused before its
    # payload is looked at, so a detector that reads one starts that partition fresh.
    blob = _reframed(_encode(_meta(), {}), pickle.dumps({"x": 1}, protocol=5), schema_version=1)
    with pytest.raises(SnapshotError) as caught:
        _decode(blob, {"metrics": "cfg"})
    assert caught.value.reason == "schema"
    assert "schema version 1, expected 2" in caught.value.detail


def test_a_pickle_under_a_version_2_header_is_refused_as_corrupt() -> None:
    blob = _reframed(_encode(_meta(), {}), pickle.dumps({"x": 1}, protocol=5))
    with pytest.raises(SnapshotError) as caught:
        _decode(blob, {"metrics": "cfg"})
    assert caught.value.reason == "corrupt"


def test_a_class_not_in_the_registry_is_refused_on_restore() -> None:
    # Written with a registry that knows a class, read with one that does not (a class
    # dropped since): refused with its name, never half-loaded.
    blob = _encode(_meta(), {"scaler": RobustScaler(window=5)})
    assert read_meta(blob).partition == 0  # the header itself is fine
    with pytest.raises(SnapshotError) as caught:
        decode_snapshot(blob, config_ids={}, classes=ClassRegistry([]))
    assert caught.value.reason == "unreadable"
    # By its stable name: the class now lives in models/anomaly/, its name did not move.
    assert "models.scaling.RobustScaler is not in the snapshot class registry" in str(caught.value)


def test_store_keeps_the_newest_and_writes_atomically(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=2)
    for offset in (10, 20, 30):
        path, size = store.write(_meta(offset), {"offset": offset})
        assert path.stat().st_size == size
    (store.directory(TOPIC, 0) / ".tmp-crashed.snap").write_bytes(b"half")  # a crash's leftover
    store.prune(TOPIC, 0)
    paths = store.paths(TOPIC, 0)
    assert len(paths) == 2
    assert [read_meta(p.read_bytes()).offsets[f"{TOPIC}:0"] for p in paths] == [30, 20]
    assert not list(store.directory(TOPIC, 0).glob(".tmp-*"))


def test_store_falls_back_past_a_corrupt_newest(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=3)
    store.write(_meta(10), {"offset": 10})
    newest, _ = store.write(_meta(20), {"offset": 20})
    newest.write_bytes(newest.read_bytes()[:-1] + b"\x00")
    refused: list[tuple[Path, str]] = []
    loaded = store.load(
        TOPIC, 0, config_ids={}, on_reject=lambda p, e: refused.append((p, e.reason))
    )
    assert loaded is not None
    assert loaded.state == {"offset": 10}
    assert refused == [(newest, "corrupt")]
    assert newest.exists()  # left for inspection


def test_store_refuses_states_the_caller_does_not_accept(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(_meta(10), {"offset": 10})
    store.write(_meta(20), ["not", "a", "dict"])

    def validate(state: object) -> None:
        if not isinstance(state, dict):
            raise SnapshotError("unreadable", "not a dict")

    reasons: list[str] = []
    loaded = store.load(
        TOPIC, 0, config_ids={}, on_reject=lambda p, e: reasons.append(e.reason), validate=validate
    )
    assert loaded is not None
    assert loaded.state == {"offset": 10}
    assert reasons == ["unreadable"]


def test_store_without_snapshots_loads_nothing(tmp_path: Path) -> None:
    assert SnapshotStore(tmp_path).load(TOPIC, 5, config_ids={}, on_reject=print) is None


def test_arrays_and_floats_come_back_bit_for_bit() -> None:
    values = np.random.default_rng(0).normal(size=100)
    values[3] = np.nan
    scalars = [0.1, -0.0, float("inf"), 1e-310, 2.0**60 + 0.5]
    _, state = _decode(_encode(_meta(), {"v": values, "s": scalars}), {})
    assert isinstance(state, dict)
    assert state["v"].tobytes() == values.tobytes()
    assert struct.pack("5d", *state["s"]) == struct.pack("5d", *scalars)


def test_incident_risk_state_survives_a_snapshot() -> None:
    # Half a stream, a snapshot of every service's state (metrics and incident risk), then the
    # other half: the restored pipelines go on exactly as the originals do.
    settings = Settings()
    sim = IncidentSimulator(services=4, interval_s=30.0, seed=5)
    lines = [item.to_bytes() for item in sim.stream(2 * 86_400)]
    half = len(lines) // 2
    metrics, risk = MetricPipeline(settings.anomaly_config()), build_risk_pipeline(settings)
    list(replay(lines[:half], metrics, risk=risk))
    services = [m.service for m in metrics]
    state = {"metrics": metrics.models_of(services), "risk": risk.export(services)}
    _, restored_state = _decode(_encode(_meta(), state), {"metrics": "cfg"})
    metrics_b, risk_b = MetricPipeline(settings.anomaly_config()), build_risk_pipeline(settings)
    metrics_b.install(restored_state["metrics"])
    risk_b.install(restored_state["risk"])
    assert len(risk_b.labeler) == len(risk.labeler) > 0
    counted_before = collections.Counter(risk.labeler.counts)

    def rest(m: MetricPipeline, r: IncidentRiskPipeline) -> list[tuple[str, float]]:
        return [(a.alert_id, a.score) for a in replay(lines[half:], m, risk=r)]

    alerts = rest(metrics, risk)
    assert any(alert_id for alert_id, _ in alerts)
    assert rest(metrics_b, risk_b) == alerts
    # Counters are the process's own (they start again at a restart): the same increments.
    assert +risk_b.labeler.counts == risk.labeler.counts - counted_before
    assert risk_b.summaries() == risk.summaries()
    assert risk.labeler.counts["positive"] > 0


def test_log_state_survives_a_snapshot_with_its_open_windows() -> None:
    # Templates, window models, baselines and the windows still open come back: the restored
    # pipeline closes those windows and alerts exactly as the original does.
    sim = LogSimulator(
        ["api", "db"],
        lines_per_s=2.0,
        incidents=rotating_incidents(["api", "db"], first_s=5400.0, every_s=1800.0, count=4),
        seed=3,
    )
    events = list(sim.events(4 * 3600.0))
    half = len(events) // 2

    def where(i: int) -> Evidence:
        return Evidence(topic="logs", partition=0, offset=i)

    original = LogPipeline()
    original.process_batch(events[:half], where)
    assert original.open_windows() > 0
    state = original.export(["api", "db"])
    _, loaded = _decode(_encode(_meta(), state), {})
    restored = LogPipeline()
    restored.install(loaded)

    def rest(pipeline: LogPipeline) -> list[tuple[str, float]]:
        out = pipeline.process_batch(events[half:], where)
        return [(a.alert_id, a.score) for a in out.alerts]

    alerts = rest(original)
    assert alerts
    assert rest(restored) == alerts
