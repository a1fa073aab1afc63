"""The snapshot class registry against real state: every class a detector's partition holds
(anomaly models on both engines, incident risk, logs) is registered, comes back field for
field, bit for bit, and what the state shares stays shared."""

from __future__ import annotations

import collections
import math
import random
import struct
from typing import Any

import numpy as np
import orjson
import pytest

from models.anomaly.trees import TreeStructure
from models.state_codec import decode_state, encode_state, serialize_state
from stream.core.logs import LogPipeline
from stream.core.pipeline import MetricPipeline
from stream.core.risk_settings import build_risk_pipeline
from stream.detector.snapshot_classes import SNAPSHOT_CLASSES
from stream.dev.incident_sim import IncidentSimulator
from stream.dev.log_simulate import LogSimulator, rotating_incidents
from stream.offline.replay import replay
from stream.schemas import Evidence
from stream.settings import Settings


def _partition_states(engine: str) -> list[dict[str, Any]]:
    """A metrics partition's state (anomaly and incident risk) and a logs partition's, as the
    detector exports them, after a day and a half with incidents."""
    settings = Settings(engine=engine)
    sim = IncidentSimulator(services=3, interval_s=30.0, seed=5)
    lines = [item.to_bytes() for item in sim.stream(2 * 86_400)]
    metrics, risk = MetricPipeline(settings.anomaly_config()), build_risk_pipeline(settings)
    list(replay(lines, metrics, risk=risk))
    # A spike after it, so that an episode is open when the state is taken.
    last = orjson.loads(lines[-1])
    spike = {**last, "metrics": {name: 1e6 for name in last["metrics"]}}
    list(replay([orjson.dumps(spike)], metrics, risk=risk))
    assert any(m._episodes.episode is not None for m in metrics)
    services = [m.service for m in metrics]
    logs = LogPipeline()
    names = ["api", "db"]
    incidents = rotating_incidents(names, first_s=5400.0, every_s=1800.0, count=4)
    events = list(LogSimulator(names, lines_per_s=2.0, incidents=incidents, seed=3).events(9000))
    logs.process_batch(events, lambda i: Evidence(topic="logs", partition=0, offset=i))
    assert logs.open_windows() > 0
    return [
        {"metrics": metrics.models_of(services), "risk": risk.export(services)},
        {"logs": logs.export(names), "offsets": ({1: 10}, 42)},
    ]


@pytest.fixture(scope="module")
def states() -> list[dict[str, Any]]:
    # A TreeStructure is written (inside a BatchHST) only when its trees are not the ones
    # shared_structure rebuilds from the seed: none of the detector's; one here for the test.
    unshared = {"trees": TreeStructure.from_river(n_features=4, n_trees=3, height=3, seed=1)}
    return [*_partition_states("numpy"), _partition_states("river")[0], unshared]


def test_every_registered_class_is_in_a_real_state(
    states: list[dict[str, Any]],
) -> None:
    met: set[str] = set()
    for state in states:
        met.update(name for name, _ in encode_state(state, SNAPSHOT_CLASSES).classes)
    assert met == set(SNAPSHOT_CLASSES.by_name)


def test_a_real_state_comes_back_field_for_field(states: list[dict[str, Any]]) -> None:
    for state in states:
        back = decode_state(
            serialize_state(encode_state(state, SNAPSHOT_CLASSES)), SNAPSHOT_CLASSES
        )
        _assert_same(state, back, {}, "state")


def test_what_a_real_state_shares_stays_shared(states: list[dict[str, Any]]) -> None:
    state = states[0]
    back = decode_state(serialize_state(encode_state(state, SNAPSHOT_CLASSES)), SNAPSHOT_CLASSES)
    models = list(back["metrics"].values())
    assert len(models) == 3
    assert all(m.config is models[0].config for m in models)  # one configuration object
    logs = back["logs"] if "logs" in back else states[1]
    assert _shared_count(state) == _shared_count(back) > 0
    assert _shared_count(states[1]) == _shared_count(
        decode_state(serialize_state(encode_state(logs, SNAPSHOT_CLASSES)), SNAPSHOT_CLASSES)
    )


def _shared_count(root: Any) -> int:
    """How many references in ``root`` lead to an object already met."""
    seen: set[int] = set()
    again = 0
    stack = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, (str, int, float, bool, bytes, type(None), np.generic)):
            continue
        if id(item) in seen:
            again += 1
            continue
        seen.add(id(item))
        stack.extend(_children(item))
    return again


def _children(item: Any) -> list[Any]:
    if isinstance(item, np.ndarray):
        return []
    if isinstance(item, dict):
        return [*item.keys(), *item.values()]
    if isinstance(item, (list, tuple, set, frozenset, collections.deque)):
        return list(item)
    if isinstance(item, (random.Random, Evidence)):
        return []
    fields = [
        getattr(item, s) for s in SNAPSHOT_CLASSES.by_type[type(item)].slots if hasattr(item, s)
    ]
    return fields + list(getattr(item, "__dict__", {}).values())


def _assert_same(a: Any, b: Any, pairs: dict[int, int], where: str) -> None:
    assert type(a) is type(b), f"{where}: {type(a)} became {type(b)}"
    if isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b)), (
            where
        )
        return
    if isinstance(a, (str, int, bool, bytes, type(None), np.generic)):
        assert a == b or (a != a and b != b), where
        return
    if id(a) in pairs:
        assert pairs[id(a)] == id(b), f"{where}: a shared object came back as two"
        return
    pairs[id(a)] = id(b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, where
        assert a.shape == b.shape, where
        assert a.tobytes() == b.tobytes(), where
        assert a.flags.writeable == b.flags.writeable, where
        return
    if isinstance(a, random.Random):
        assert a.getstate() == b.getstate(), where
        return
    if isinstance(a, dict):
        assert list(a) == list(b), where
        if isinstance(a, collections.defaultdict):
            assert type(a.default_factory) is type(b.default_factory), where
        for key in a:
            _assert_same(a[key], b[key], pairs, f"{where}[{key!r}]")
        return
    if isinstance(a, (list, tuple, collections.deque)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, pairs, f"{where}[{i}]")
        return
    if isinstance(a, (set, frozenset)):
        assert a == b, where
        return
    entry = SNAPSHOT_CLASSES.by_type[type(a)]
    if entry.how == "custom":
        assert entry.dump is not None
        _assert_same(entry.dump(a), entry.dump(b), {}, f"{where}<{entry.name}>")
        return
    for slot in entry.slots:
        assert hasattr(a, slot) == hasattr(b, slot), f"{where}.{slot}"
        if hasattr(a, slot):
            _assert_same(getattr(a, slot), getattr(b, slot), pairs, f"{where}.{slot}")
    own_a, own_b = getattr(a, "__dict__", {}), getattr(b, "__dict__", {})
    if entry.how == "state":  # what its __getstate__ keeps (caches are rebuilt on load)
        own_a, own_b = a.__getstate__(), b.__getstate__()
    assert list(own_a) == list(own_b), where
    for key in own_a:
        _assert_same(own_a[key], own_b[key], pairs, f"{where}.{key}")
