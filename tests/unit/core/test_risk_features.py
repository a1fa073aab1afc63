"""Risk vectors: one per service per step, the same whatever the batch boundaries."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.anomaly import Deviations
from stream.core.features.risk import RiskFeatureBuilder, ServiceBatch
from stream.core.features.risk_vectors import RiskVector, _column_medians
from stream.core.incident_risk import BatchRows
from stream.schemas import Evidence, MetricEvent


def _feed(
    builder: RiskFeatureBuilder,
    ts: np.ndarray,
    z: np.ndarray,
    cuts: list[int],
    values: np.ndarray | None = None,
) -> list[RiskVector]:
    """Feed rows of one service in batches cut at ``cuts`` (raw values default to ``z``)."""
    values = z if values is None else values
    out: list[RiskVector] = []
    bounds = [0, *sorted(set(cuts)), len(ts)]
    for a, b in itertools.pairwise(bounds):
        if a >= b:
            continue
        n = b - a
        out += builder.add(
            "api",
            ts[a:b],
            [Deviations(0, n, ("cpu", "mem"), z[a:b], values[a:b])],
            np.full(n, 0.5),
            np.zeros(n, dtype=bool),
            np.zeros(n, dtype=bool),
            lambda i, a=a: Evidence(topic="t", partition=0, offset=a + i),
        )
    return out


def test_one_vector_per_step_with_the_steps_mean_and_last_event() -> None:
    builder = RiskFeatureBuilder(step_s=60.0, trend_steps=3)
    ts = np.arange(0.0, 300.0, 10.0)  # 5 steps of 6 events
    z = np.column_stack([np.repeat(np.arange(5.0), 6), np.zeros(30)])
    vectors = _feed(builder, ts, z, [7, 13])
    assert [v.ts_s for v in vectors] == [50.0, 110.0, 170.0, 230.0]  # the last step stays open
    assert [v.evidence.offset for v in vectors] == [5, 11, 17, 23]
    assert set(vectors[0].features) == {
        "z:cpu",
        "z:mem",
        "dz:cpu",
        "dz:mem",
        "sz:cpu",
        "sz:mem",
        "anomaly_ratio",
        "anomaly_flagged",
        "deploy_recent",
    }
    # No trailing baseline yet (fewer than min_baseline_steps steps): neutral.
    assert vectors[3].features["z:cpu"] == vectors[3].features["dz:cpu"] == 0.0
    assert vectors[3].features["sz:cpu"] == 0.0
    assert vectors[0].features["anomaly_ratio"] == 0.5


def test_trailing_z_sees_a_slow_drift_and_its_trend() -> None:
    builder = RiskFeatureBuilder(step_s=60.0, trend_steps=15, min_baseline_steps=30)
    rng = np.random.default_rng(0)
    steps = 200
    ts = np.arange(0.0, steps * 60.0, 30.0)  # two events a step
    level = 100.0 + rng.normal(0, 1.0, ts.size)
    drift = np.clip((ts - 170 * 60.0) / (30 * 60.0), 0, None) * 10.0  # +10 over 30 min
    values = np.column_stack([level + drift, level])
    vectors = _feed(builder, ts, np.zeros_like(values), [], values)
    before, last = vectors[160], vectors[-1]
    assert abs(before.features["z:cpu"]) < 1.5
    assert last.features["z:cpu"] > 1.5  # compressed: log1p of several MADs
    assert last.features["dz:cpu"] > 0.3  # still rising over the last 15 steps
    assert abs(last.features["z:mem"]) < 1.5  # the other metric did not move


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=119), max_size=6))
def test_batch_boundaries_do_not_change_the_vectors(cuts: list[int]) -> None:
    rng = np.random.default_rng(3)
    ts = np.sort(rng.uniform(0, 1200, size=120))
    z = rng.normal(size=(120, 2))
    whole = _feed(RiskFeatureBuilder(step_s=60.0), ts, z, [])
    cut = _feed(RiskFeatureBuilder(step_s=60.0), ts, z, cuts)
    assert [(v.ts_s, v.evidence.offset) for v in cut] == [
        (v.ts_s, v.evidence.offset) for v in whole
    ]
    for a, b in zip(cut, whole, strict=True):
        assert a.features == pytest.approx(b.features)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=119), max_size=8))
def test_folded_sums_give_the_same_floats_whatever_the_batch_boundaries(cuts: list[int]) -> None:
    """Steps of ~6 events, values missing here and there: with ``folded`` sums a step cut
    by batches sums to the very floats of the whole (without, only approximately)."""
    rng = np.random.default_rng(4)
    ts = np.sort(rng.uniform(0, 1200, size=120))
    z = rng.normal(size=(120, 2)) * 1e3
    values = np.where(rng.random(size=z.shape) < 0.1, np.nan, z)

    def builder() -> RiskFeatureBuilder:
        return RiskFeatureBuilder(step_s=60.0, min_baseline_steps=2, folded=True)

    whole = _feed(builder(), ts, z, [], values)
    cut = _feed(builder(), ts, z, cuts, values)
    one_by_one = _feed(builder(), ts, z, list(range(1, 120)), values)
    for other in (cut, one_by_one):
        assert [v.evidence.offset for v in other] == [v.evidence.offset for v in whole]
        for a, b in zip(other, whole, strict=True):
            assert a.features.row.tobytes() == b.features.row.tobytes()


def test_a_vector_knows_the_row_that_closed_its_step() -> None:
    ts = np.arange(0.0, 300.0, 10.0)  # 5 steps of 6 events, the batch rows 0..29
    z = np.zeros((30, 2))
    vectors = _feed(RiskFeatureBuilder(step_s=60.0), ts, z, [])
    assert [v.closed_by for v in vectors] == [6, 12, 18, 24]  # the next step's first row
    # (a batch row: where the vector stands among the batch's events)


def test_an_event_from_an_earlier_step_joins_the_open_one() -> None:
    builder = RiskFeatureBuilder(step_s=60.0)
    ts = np.array([0.0, 70.0, 65.0, 50.0, 130.0])
    z = np.ones((5, 2))
    vectors = _feed(builder, ts, z, [])
    # Steps: [0], [70, 65, 50 (late: joins step 1)], then 130 closes step 1.
    assert [v.ts_s for v in vectors] == [0.0, 50.0]


def test_log_windows_join_the_next_vectors() -> None:
    builder = RiskFeatureBuilder(step_s=60.0)
    builder.set_log_window("api", ratio=2.5, new_error_templates=3)
    vectors = _feed(builder, np.array([0.0, 61.0]), np.zeros((2, 2)), [])
    assert vectors[0].features["log_ratio"] == 2.5
    assert vectors[0].features["log_new_error_templates"] == 3.0


def test_deploys_and_flags_are_shares_of_the_step() -> None:
    builder = RiskFeatureBuilder(step_s=60.0)
    n = 4
    vectors = builder.add(
        "api",
        np.array([0.0, 10.0, 20.0, 70.0]),
        [Deviations(0, n, ("cpu",), np.zeros((n, 1)), np.zeros((n, 1)))],
        np.array([0.1, 3.0, 0.2, 0.0]),
        np.array([False, True, False, False]),
        np.array([True, False, False, False]),
        lambda i: Evidence(topic="t", partition=0, offset=i),
    )
    (vector,) = vectors
    assert vector.features["anomaly_flagged"] == pytest.approx(1 / 3)
    assert vector.features["deploy_recent"] == pytest.approx(1 / 3)
    assert vector.features["anomaly_ratio"] == 3.0


def test_a_missing_value_is_left_out_of_its_steps_mean() -> None:
    builder = RiskFeatureBuilder(step_s=60.0)
    values = np.array([[1.0, 10.0], [np.nan, 20.0], [3.0, 30.0]])
    _feed(builder, np.array([0.0, 10.0, 20.0]), np.zeros_like(values), [], values)
    step = builder._services["api"].step
    assert step is not None
    assert step.v_sum.tolist() == [4.0, 60.0]
    assert step.v_count.tolist() == [2.0, 3.0]  # the missing cpu value is not counted
    _feed(builder, np.array([70.0]), np.zeros((1, 2)), [], np.array([[5.0, 50.0]]))
    step = builder._services["api"].step
    assert step is not None
    assert (step.v_sum.tolist(), step.v_count.tolist()) == ([5.0, 50.0], [1.0, 1.0])


_SETS = [("cpu", "mem"), ("cpu", "mem", "err"), ("lat",)]


def _random_batches(
    seed: int,
) -> list[tuple[list[ServiceBatch], np.ndarray, np.ndarray, np.ndarray]]:
    """Batches of several services: several steps each, late rows, missing values, feature
    sets that change (and change back) within a service's rows."""
    rng = np.random.default_rng(seed)
    services = [f"s{i}" for i in range(4)]
    clock = dict.fromkeys(services, 0.0)
    current = dict.fromkeys(services, _SETS[0])
    batches = []
    for _ in range(25):
        rows, total = [], 0
        for service in rng.permutation(services)[: int(rng.integers(1, 5))].tolist():
            n = int(rng.integers(1, 20))
            ts = clock[service] + np.cumsum(rng.uniform(0, 45, n))
            if rng.random() < 0.3:
                ts[int(rng.integers(0, n))] -= rng.uniform(0, 200)  # out of order
            clock[service] = float(ts.max())
            blocks, start = [], 0
            while start < n:
                end = n if rng.random() < 0.6 else int(rng.integers(start + 1, n + 1))
                if rng.random() < 0.2:
                    current[service] = _SETS[int(rng.integers(0, len(_SETS)))]
                values = rng.normal(50, 10, size=(end - start, len(current[service])))
                values[rng.random(values.shape) < 0.1] = np.nan
                blocks.append(Deviations(start, end, current[service], values * 0, values))
                start = end
            rows.append(ServiceBatch(service, np.arange(total, total + n), ts.tolist(), blocks))
            total += n
        ratios = rng.random(total) * 12
        batches.append((rows, ratios, rng.random(total) < 0.2, rng.random(total) < 0.1))
    return batches


def _builder() -> RiskFeatureBuilder:
    builder = RiskFeatureBuilder(step_s=60.0, trend_steps=3, baseline_steps=7, min_baseline_steps=2)
    builder.set_log_window("s1", ratio=2.0, new_error_templates=1)
    return builder


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_add_batch_gives_the_vectors_of_adding_services_one_by_one(seed: int) -> None:
    def evidence(i: int) -> Evidence:
        return Evidence(topic="t", partition=0, offset=i)

    together, one_by_one = _builder(), _builder()
    got, expected = [], []
    for rows, ratios, flagged, deploys in _random_batches(seed):
        got += together.add_batch(rows, ratios, flagged, deploys, evidence)
        for r in rows:
            expected += one_by_one.add(
                r.service,
                np.array(r.ts_s),
                r.deviations,
                ratios[r.indices],
                flagged[r.indices],
                deploys[r.indices],
                lambda i, idx=r.indices: evidence(int(idx[i])),
            )
    assert len(got) > 50
    assert [(v.service, v.ts_s, v.evidence) for v in got] == [
        (v.service, v.ts_s, v.evidence) for v in expected
    ]
    for a, b in zip(got, expected, strict=True):
        assert list(a.features) == list(b.features)
        assert np.array_equal(a.features.row, b.features.row, equal_nan=True)


def test_several_steps_and_services_in_one_batch() -> None:
    builder = RiskFeatureBuilder(step_s=60.0, trend_steps=1, baseline_steps=2, min_baseline_steps=1)
    ts = [0.0, 30.0, 60.0, 90.0, 120.0]
    values = np.array([[1.0], [3.0], [10.0], [np.nan], [5.0]])
    rows = [
        ServiceBatch(
            s, np.arange(5 * i, 5 * i + 5), ts, [Deviations(0, 5, ("cpu",), values, values)]
        )
        for i, s in enumerate(["a", "b"])
    ]
    vectors = builder.add_batch(
        rows,
        np.zeros(10),
        np.zeros(10, dtype=bool),
        np.arange(10) % 2 == 0,
        lambda i: Evidence(topic="t", partition=0, offset=i),
    )
    assert [(v.service, v.ts_s, v.evidence.offset) for v in vectors] == [
        ("a", 30.0, 1),
        ("a", 90.0, 3),
        ("b", 30.0, 6),
        ("b", 90.0, 8),
    ]
    # Step means 2 then 10 (the missing value left out): z against the one step before.
    second = vectors[1].features
    assert second["z:cpu"] == pytest.approx(np.log1p((10.0 - 2.0) / (1e-3 * 2.0 + 1e-9)))
    assert second["dz:cpu"] == second["z:cpu"]  # the first step's z was 0 (no baseline yet)
    assert vectors[0].features["deploy_recent"] == 0.5
    assert vectors[2].features.to_dict() == vectors[0].features.to_dict()


@pytest.mark.parametrize("rows", [1, 2, 30, 31, 359, 360])
def test_column_medians_are_numpy_medians_bit_for_bit(rows: int) -> None:
    rng = np.random.default_rng(rows)
    values = rng.normal(size=(rows, 6)).astype(np.float32).astype(np.float64)
    values[: rows // 3, 0] = 1.5  # ties
    np.testing.assert_array_equal(_column_medians(values), np.median(values, axis=0))


def _events(ts: np.ndarray, hosts: list[str]) -> list[MetricEvent]:
    return [
        MetricEvent.model_validate(
            {
                "ts": t,
                "service": "api",
                "metrics": {"cpu": 1.0},
                "region": "eu",
                "host": host,
                "deploy_recent": host.endswith("-2"),
            }
        )
        for t, host in zip(ts.tolist(), hosts, strict=True)
    ]


@pytest.mark.parametrize("cuts", [[], [7, 13], list(range(1, 30))])
def test_vector_labels_are_the_steps_last_events_whatever_the_batches(cuts: list[int]) -> None:
    builder = RiskFeatureBuilder(step_s=60.0, trend_steps=3)
    ts = np.arange(0.0, 300.0, 10.0)  # 5 steps of 6 events; the host changes every 4 events
    hosts = [f"api-{i // 4 % 3}" for i in range(30)]
    events = _events(ts, hosts)
    z = np.zeros((30, 2))
    out: list[RiskVector] = []
    bounds = [0, *cuts, 30]
    for a, b in itertools.pairwise(bounds):
        n = b - a
        out += builder.add(
            "api",
            ts[a:b],
            [Deviations(0, n, ("cpu", "mem"), z[a:b], z[a:b])],
            np.full(n, 0.5),
            np.zeros(n, dtype=bool),
            np.zeros(n, dtype=bool),
            BatchRows(events[a:b], lambda i, a=a: Evidence(topic="t", partition=0, offset=a + i)),
        )
    assert [v.evidence.offset for v in out] == [5, 11, 17, 23]
    for vector in out:
        last = events[vector.evidence.offset]
        expected = {"region": "eu", "host": last.host or ""}
        if last.deploy_recent:
            expected["deploy_recent"] = "true"
        assert vector.labels == expected
    # A plain evidence look-up (no labels known) gives none.
    plain = RiskFeatureBuilder(step_s=60.0, trend_steps=3)
    assert all(v.labels == {} for v in _feed(plain, ts, z, []))


def test_an_open_steps_labels_survive_a_snapshot() -> None:
    from models.state_codec import decode_state, encode_state, serialize_state
    from stream.detector.snapshot_classes import SNAPSHOT_CLASSES

    ts = np.arange(0.0, 120.0, 10.0)  # two steps; the second stays open
    events = _events(ts, ["api-1"] * 11 + ["api-2"])
    z = np.zeros((12, 2))

    def feed(builder: RiskFeatureBuilder, a: int, b: int) -> list[RiskVector]:
        n = b - a
        return builder.add(
            "api",
            ts[a:b],
            [Deviations(0, n, ("cpu", "mem"), z[a:b], z[a:b])],
            np.full(n, 0.5),
            np.zeros(n, dtype=bool),
            np.zeros(n, dtype=bool),
            BatchRows(events[a:b], lambda i, a=a: Evidence(topic="t", partition=0, offset=a + i)),
        )

    builder = RiskFeatureBuilder(step_s=60.0, trend_steps=3)
    feed(builder, 0, 12)
    state = builder.export(["api"])
    back = decode_state(serialize_state(encode_state(state, SNAPSHOT_CLASSES)), SNAPSHOT_CLASSES)
    restored = RiskFeatureBuilder(step_s=60.0, trend_steps=3)
    restored.install(back)
    # The next step's first event closes the open one: its vector has its last event's labels.
    closing = _events(np.array([120.0]), ["api-1"])
    (vector,) = restored.add(
        "api",
        np.array([120.0]),
        [Deviations(0, 1, ("cpu", "mem"), np.zeros((1, 2)), np.zeros((1, 2)))],
        np.full(1, 0.5),
        np.zeros(1, dtype=bool),
        np.zeros(1, dtype=bool),
        BatchRows(closing, lambda i: Evidence(topic="t", partition=0, offset=12 + i)),
    )
    assert vector.evidence.offset == 11
    assert vector.labels == {"region": "eu", "host": "api-2", "deploy_recent": "true"}
