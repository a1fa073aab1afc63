"""HorizonLabeler: each labelling rule, its counts, its cost and its memory."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.incident import OUTCOMES, FeatureRow, HorizonLabeler, LabelledVector, RiskConfig

H = 600.0
GRACE = 60.0
CONFIG = RiskConfig(horizon_s=H, label_grace_s=GRACE, incident_max_s=3600.0)


def labeler_with(service: str = "api", times: tuple[float, ...] = (), **kw: Any) -> HorizonLabeler:
    labeler = HorizonLabeler(dataclasses.replace(CONFIG, **kw))
    for ts in times:
        assert labeler.add(service, ts, {"x": ts / 1000}, 0.1, f"k{ts:g}") == []
    return labeler


def stamps(items: list[LabelledVector]) -> list[float]:
    return [item.ts_s for item in items]


def test_counts_start_at_zero() -> None:
    assert HorizonLabeler(CONFIG).counts == dict.fromkeys(OUTCOMES, 0)


def test_positives_are_the_vectors_within_the_horizon_before_the_open() -> None:
    labeler = labeler_with(times=(0, 400, 700, 1000))
    out = labeler.opened("api", "inc", 1000)  # range (400, 1000]
    assert stamps(out) == [700, 1000]
    assert all(v.label and v.incident_id == "inc" and v.origin == "horizon" for v in out)
    assert out[0].vector == {"x": pytest.approx(0.7)}
    assert out[0].key == "k700"
    assert labeler.counts["positive"] == 2
    assert len(labeler) == 2


def test_vector_added_after_the_open_but_within_its_horizon_is_positive_at_once() -> None:
    labeler = labeler_with()
    labeler.opened("api", "inc", 1000)
    (item,) = labeler.add("api", 900, {"x": 1.0}, 0.3, "late-vector")
    assert (item.label, item.incident_id, item.probability) == (True, "inc", 0.3)


def test_vectors_during_an_incident_are_dropped_until_it_resolves() -> None:
    labeler = labeler_with(times=(900, 1100, 1200))
    assert stamps(labeler.opened("api", "inc", 1000)) == [900]
    assert labeler.counts["during_incident"] == 2  # 1100 and 1200 were buffered
    assert labeler.add("api", 1500, {"x": 1.0}, 0.1, "a") == []
    assert labeler.counts["during_incident"] == 3
    assert len(labeler) == 0
    labeler.resolved("api", "inc", 2000)
    labeler.add("api", 2000, {"x": 1.0}, 0.1, "b")  # still inside: (open, resolved]
    labeler.add("api", 2001, {"x": 1.0}, 0.1, "c")
    assert labeler.counts["during_incident"] == 4
    assert len(labeler) == 1


def test_an_incident_without_resolve_ends_after_incident_max() -> None:
    labeler = labeler_with()
    labeler.opened("api", "inc", 1000)
    labeler.add("api", 1000 + 3600, {"x": 1.0}, 0.1, "a")
    labeler.add("api", 1000 + 3601, {"x": 1.0}, 0.1, "b")
    assert labeler.counts["during_incident"] == 1
    assert len(labeler) == 1


def test_expire_labels_negatives_once_horizon_and_grace_passed() -> None:
    labeler = labeler_with(times=(0, 100))
    assert labeler.expire(H + GRACE - 1) == []
    (item,) = labeler.expire(H + GRACE)
    assert (item.ts_s, item.label, item.incident_id) == (0, False, None)
    assert stamps(labeler.expire(10_000)) == [100]
    assert labeler.counts["negative"] == 2
    assert labeler.expire(20_000) == []


def test_duplicate_opens_are_ignored() -> None:
    labeler = labeler_with(times=(900,))
    assert len(labeler.opened("api", "inc", 1000)) == 1
    labeler.add("api", 950, {"x": 1.0}, 0.1, "again")  # positive at once, not buffered
    assert labeler.opened("api", "inc", 1000) == []
    assert labeler.counts["duplicate"] == 1


def test_resolve_before_open_sets_the_span_when_the_open_arrives() -> None:
    labeler = labeler_with(times=(900,))
    assert labeler.resolved("api", "inc", 1200) == []
    assert labeler.counts["resolved_before_opened"] == 1
    assert stamps(labeler.opened("api", "inc", 1000)) == [900]
    labeler.add("api", 1100, {"x": 1.0}, 0.1, "inside")
    labeler.add("api", 1300, {"x": 1.0}, 0.1, "after")  # kept: the span ended at 1200, not +3600
    assert labeler.counts["during_incident"] == 1
    assert len(labeler) == 1


def test_resolve_that_never_opens_changes_nothing_else() -> None:
    labeler = labeler_with(times=(900,))
    labeler.resolved("api", "ghost", 1200)
    assert len(labeler) == 1
    assert labeler.add("api", 1100, {"x": 1.0}, 0.1, "k") == []
    assert len(labeler) == 2
    assert labeler.counts["resolved_before_opened"] == 1
    assert sum(labeler.counts.values()) == 1


def test_open_for_unknown_service_remembers_the_span() -> None:
    labeler = labeler_with()
    assert labeler.opened("new", "inc", 1000) == []
    assert labeler.counts["unknown_service"] == 1
    assert labeler.add("new", 1500, {"x": 1.0}, 0.1, "k") == []
    assert labeler.counts["during_incident"] == 1
    labeler.opened("new", "inc-2", 9000)  # vectors were added by now: not unknown
    assert labeler.counts["unknown_service"] == 1


def test_incidents_read_far_ahead_of_the_vectors_still_label_them() -> None:
    # A detector catching up a backlog may read a day of incidents before the metrics they
    # follow: every span must wait for the vectors, not be forgotten at the next open.
    labeler = labeler_with()
    opens = [10_000.0 * (i + 1) for i in range(8)]
    for i, open_s in enumerate(opens):
        labeler.opened("api", f"inc-{i}", open_s)
        labeler.resolved("api", f"inc-{i}", open_s + 600)
    positives = []
    for ts in range(0, 90_000, 60):
        positives += [v.ts_s for v in labeler.add("api", float(ts), {"x": 1.0}, 0.1, "") if v.label]
    # The vectors within the horizon before each open are positive, for all eight incidents.
    assert sorted({int((t + H) // 10_000) for t in positives}) == list(range(1, 9))
    assert len(positives) == 8 * H / 60


def test_late_label_is_counted_once_and_buffered_vectors_still_become_positive() -> None:
    labeler = labeler_with(times=(0, 300, 600))
    assert stamps(labeler.expire(H + GRACE)) == [0]
    out = labeler.opened("api", "inc", 500)  # range (-100, 500] reaches the expired 0
    assert stamps(out) == [300]
    assert labeler.counts["late"] == 1
    labeler.opened("api", "inc", 500)
    assert labeler.counts["late"] == 1
    labeler.opened("api", "other", 2000)  # range (1400, 2000]: nothing expired in it
    assert labeler.counts["late"] == 1


def test_eviction_keeps_the_bound_labels_the_oldest_negative_and_makes_labels_late() -> None:
    labeler = labeler_with(times=(0, 60, 120), max_vectors_per_service=3)
    (evicted,) = labeler.add("api", 180, {"x": 1.0}, 0.1, "k")
    assert (evicted.ts_s, evicted.label) == (0, False)
    assert len(labeler) == 3
    assert labeler.counts["evicted"] == 1
    assert labeler.counts["negative"] == 0
    assert stamps(labeler.opened("api", "inc", 200)) == [60, 120, 180]
    assert labeler.counts["late"] == 1


def test_a_full_buffer_first_labels_what_is_due_by_the_new_vector() -> None:
    # Vectors due (H + grace passed) by the new vector's time are negatives, not evictions:
    # the caller's expiry may lag this service's event time.
    labeler = labeler_with(times=(0, 60, 120), max_vectors_per_service=3)
    due = labeler.add("api", 60 + H + GRACE, {"x": 1.0}, 0.1, "k")
    assert stamps(due) == [0, 60]
    assert (labeler.counts["negative"], labeler.counts["evicted"], len(labeler)) == (2, 0, 2)
    # While labels may be unread, nothing is expired early: only the bound evicts.
    held = labeler_with(times=(0, 60, 120), max_vectors_per_service=3)
    (evicted,) = held.add("api", 60 + H + GRACE, {"x": 1.0}, 0.1, "k", expire=False)
    assert evicted.ts_s == 0
    assert (held.counts["negative"], held.counts["evicted"]) == (0, 1)


def test_feedback_labels_a_buffered_vector_by_key() -> None:
    labeler = labeler_with(times=(0, 60))
    labeler.add("db", 30, {"y": 2.0}, 0.9, "3f" * 16)
    item = labeler.feedback("3f" * 16, True)
    assert item is not None
    assert (item.service, item.ts_s, item.vector, item.probability) == ("db", 30, {"y": 2.0}, 0.9)
    assert (item.label, item.origin, item.key) == (True, "feedback", "3f" * 16)
    assert labeler.feedback("3f" * 16, True) is None
    assert labeler.feedback("never", False) is None
    assert labeler.counts["feedback"] == 1
    assert len(labeler) == 2


@pytest.mark.parametrize("key", ["ab" * 16, "AB" * 16, "abc", "", "alert-ünïcode", "00", "a b"])
def test_keys_round_trip(key: str) -> None:
    labeler = labeler_with()
    labeler.add("api", 0, {"x": 1.0}, 0.1, "ff" * 40)  # widen nothing: the key array grows
    labeler.add("api", 1, {"x": 1.0}, 0.1, key)
    item = labeler.feedback(key, False)
    assert item is not None
    assert item.key == key


def test_out_of_order_vectors_and_changing_feature_names() -> None:
    labeler = HorizonLabeler(CONFIG)
    labeler.add("api", 200, {"a": 1.0}, 0.1, "k200")
    labeler.add("api", 100, {"a": 2.0, "b": 3.0, "c": 4.0}, 0.2, "k100")
    labeler.add("api", 150, {"b": 5.0}, 0.3, "k150")
    out = labeler.expire(10_000)
    assert [(v.ts_s, v.vector, v.key) for v in out] == [
        (100, {"a": 2.0, "b": 3.0, "c": 4.0}, "k100"),
        (150, {"b": 5.0}, "k150"),
        (200, {"a": 1.0}, "k200"),
    ]


def test_expire_with_nothing_due_touches_no_service() -> None:
    labeler = HorizonLabeler(CONFIG)
    for i in range(2_000):
        labeler.add(f"s{i}", float(i), {"x": 1.0}, 0.1, str(i))

    class CountingDict(dict[str, Any]):
        reads = 0

        def __getitem__(self, key: str) -> Any:
            CountingDict.reads += 1
            return super().__getitem__(key)

        def get(self, key: str, default: Any = None) -> Any:
            CountingDict.reads += 1
            return super().get(key, default)

    labeler._buffers = CountingDict(labeler._buffers)
    began = time.perf_counter()
    for _ in range(1_000):
        assert labeler.expire(H + GRACE - 1) == []
    assert time.perf_counter() - began < 0.05
    assert CountingDict.reads == 0
    assert len(labeler.expire(H + GRACE + 9.5)) == 10  # services 0..9 are due
    assert CountingDict.reads == 10


def test_memory_of_a_realistic_load_is_honest_and_bounded() -> None:
    """1,000 services, 45 vectors of 30 features each, 32-hex keys (the detector's alert ids)."""
    services, vectors, features = 1_000, 45, 30
    rows = np.random.default_rng(0).normal(size=(vectors, features)).tolist()
    payloads = [{f"metric_{j}_z": v for j, v in enumerate(row)} for row in rows]
    keys = [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(services * vectors)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        labeler = HorizonLabeler(RiskConfig())
        for step in range(vectors):
            for s in range(services):
                labeler.add(
                    f"service-{s:05d}", step * 60.0, payloads[step], 0.02, keys[step * services + s]
                )
        traced = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(labeler) == services * vectors
    assert 0.85 * traced <= labeler.nbytes() <= 1.15 * traced
    per_service = labeler.nbytes() / services
    # 10,000 services: ~81 MiB, of which 51.5 MiB is the float32 feature values themselves.
    assert per_service * 10_000 < 85 * 2**20
    assert per_service < 1.2 * vectors * (features * 4 + 24 + 17)


def test_a_service_without_incidents_costs_only_its_bounded_buffer() -> None:
    labeler = HorizonLabeler(RiskConfig(max_vectors_per_service=64))
    vector = {f"f{j}": 1.0 for j in range(30)}
    sizes = []
    for step in range(1_000):
        labeler.add("quiet", step * 60.0, vector, 0.01, f"{step:032x}")
        labeler.expire(step * 60.0)
        sizes.append(labeler.nbytes())
    assert max(sizes[100:]) == max(sizes[:100])
    assert len(labeler) <= 64


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from("ab"), st.integers(0, 5_000)),
        st.tuples(st.just("opened"), st.sampled_from("abc"), st.integers(0, 5_000)),
        st.tuples(st.just("resolved"), st.sampled_from("abc"), st.integers(0, 5_000)),
        st.tuples(st.just("expire"), st.just(""), st.integers(0, 5_000)),
        st.tuples(st.just("feedback"), st.just(""), st.integers(0, 40)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(_OPS)
def test_every_vector_is_accounted_for_exactly_once(ops: list[tuple[str, str, int]]) -> None:
    labeler = HorizonLabeler(
        RiskConfig(horizon_s=H, label_grace_s=GRACE, max_vectors_per_service=4)
    )
    added = 0
    labelled: list[LabelledVector] = []
    for op, service, t in ops:
        if op == "add":
            labelled += labeler.add(service, float(t), {"x": 1.0}, 0.5, f"k{added}")
            added += 1
        elif op == "opened":
            labelled += labeler.opened(service, f"inc-{service}{t % 3}", float(t))
        elif op == "resolved":
            labelled += labeler.resolved(service, f"inc-{service}{t % 3}", float(t))
        elif op == "expire":
            labelled += labeler.expire(float(t))
        else:
            item = labeler.feedback(f"k{t}", True)
            labelled += [item] if item is not None else []
    c = labeler.counts
    outcomes = c["positive"] + c["negative"] + c["evicted"] + c["feedback"]
    assert outcomes == len(labelled)
    assert added == len(labeler) + outcomes + c["during_incident"]
    assert len({item.key for item in labelled}) == len(labelled)
    for item in labelled:
        if item.label and item.origin == "horizon":
            assert item.incident_id is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("horizon_s", 0.0),
        ("horizon_s", math.inf),
        ("label_grace_s", -1.0),
        ("incident_max_s", 0.0),
        ("max_vectors_per_service", 0),
        ("learning_rate", 0.0),
        ("target_recall", 0.0),
        ("target_recall", 1.01),
        ("alert_budget", 0.0),
        ("alert_budget", 1.0),
        ("threshold_override", 1.5),
        ("tuning_window", 0),
        ("min_positives", 0),
        ("strategy", "best"),
    ],
)
def test_config_refuses_nonsense(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        RiskConfig(**{field: value})


def test_keys_of_every_length_survive_the_buffer_growing() -> None:
    labeler = HorizonLabeler(RiskConfig())
    keys = {}
    labelled = []
    for i in range(60):  # past several growths of the buffer, long and empty keys mixed
        key = "" if i % 3 else f"{i:02x}" * 16
        keys[float(i * 10)] = key
        labelled += labeler.add("api", float(i * 10), {"x": 1.0}, 0.1, key)
    labelled += labeler.expire(10_000.0)
    assert {item.ts_s: item.key for item in labelled} == keys


def test_feature_rows_are_held_like_dicts_and_leave_as_rows() -> None:
    names = ("a", "b")
    from_rows, from_dicts = HorizonLabeler(CONFIG), HorizonLabeler(CONFIG)
    for ts in (300, 100, 200):  # out of order
        values = np.array([ts / 7, -ts / 3])
        from_rows.add("api", ts, FeatureRow(names, values), 0.5, "")
        from_dicts.add("api", ts, dict(zip(names, values.tolist(), strict=True)), 0.5, "")
    rows, dicts = from_rows.expire(10_000), from_dicts.expire(10_000)
    assert [type(v.vector) for v in rows] == [FeatureRow] * 3
    assert [(v.ts_s, dict(v.vector.items()), v.key) for v in rows] == [
        (v.ts_s, dict(v.vector.items()), v.key) for v in dicts
    ]
    assert rows[0].vector["a"] == float(np.float32(100 / 7))  # stored as float32


def test_a_feature_row_labelled_at_once_keeps_its_values() -> None:
    labeler = HorizonLabeler(CONFIG)
    labeler.add("api", 0, {"a": 0.0}, 0.1, "")
    labeler.opened("api", "inc-1", 1_000)
    value = 1 / 3
    (item,) = labeler.add("api", 900, FeatureRow(("a",), np.array([value])), 0.2, "")
    assert item.label
    assert item.vector["a"] == value  # not rounded to float32


def test_buffers_move_between_labelers_with_their_feature_names() -> None:
    source = labeler_with(times=(0, 60))
    source.add("api", 120, {"y": 2.0, "z": 3.0}, 0.2, "k120")
    other = labeler_with("db", times=(0,))
    other.add("db", 30, {"q": 1.0}, 0.1, "")  # its schema ids differ from the source's
    other.install(source.export(["api"]))
    source.forget(["api"])
    assert len(source) == 0
    assert source.expire(10**6) == []  # a forgotten service's horizon entry is skipped
    assert len(other) == 5
    moved = [v for v in other.expire(10**6) if v.service == "api"]
    assert [(v.ts_s, dict(v.vector)) for v in moved] == [
        (0.0, {"x": 0.0}),
        (60.0, {"x": pytest.approx(0.06)}),
        (120.0, {"y": 2.0, "z": 3.0}),
    ]


def test_install_applies_the_incidents_read_here_after_the_snapshot() -> None:
    """Every detector reads every incident: one read here for a service owned elsewhere
    labels that service's restored vectors when it moves here."""
    owner = labeler_with(times=(0, 300, 600))
    snapshot = owner.export(["api"])
    here = HorizonLabeler(CONFIG)
    here.opened("api", "inc-1", 700)  # no vectors of api here yet
    assert here.counts["unknown_service"] == 1
    settled = here.install(snapshot)
    assert [(v.ts_s, v.label, v.incident_id) for v in settled] == [
        (300.0, True, "inc-1"),
        (600.0, True, "inc-1"),
    ]
    assert here.counts["positive"] == 2
    assert len(here) == 1  # the vector at 0 waits for its horizon
    # The span stays: a vector inside it is dropped, one before the next open is not.
    assert here.add("api", 800, {"x": 0.8}, 0.1, "") == []
    assert here.counts["during_incident"] == 1


def test_an_incident_the_snapshot_knows_is_not_applied_again() -> None:
    owner = labeler_with(times=(0, 300))
    owner.opened("api", "inc-1", 400)
    owner.resolved("api", "inc-1", 500)
    owner.add("api", 900, {"x": 0.9}, 0.1, "")
    here = HorizonLabeler(CONFIG)
    here.opened("api", "inc-1", 400)
    assert here.install(owner.export(["api"])) == []
    # Read again after a restart (the reader starts at the beginning): nothing happens.
    assert here.opened("api", "inc-1", 400) == []
    assert here.counts["positive"] == 0
    assert len(here) == 1


def test_a_resolve_read_here_shortens_the_restored_span() -> None:
    owner = labeler_with(times=(0,))
    owner.opened("api", "inc-1", 400)
    here = HorizonLabeler(CONFIG)
    here.opened("api", "inc-1", 400)
    here.resolved("api", "inc-1", 500)
    here.install(owner.export(["api"]))
    assert here.add("api", 600, {"x": 0.6}, 0.1, "") == []
    assert not here.in_incident("api", 600)  # resolved at 500, not open until 4000


def test_forget_keeps_the_spans_of_a_service_that_moves_away() -> None:
    labeler = labeler_with(times=(0, 300))
    labeler.opened("api", "inc-1", 1000)
    labeler.forget(["api"])
    assert len(labeler) == 0
    assert not labeler.holds("api")
    assert labeler.in_incident("api", 1500)


def test_feedback_with_a_service_searches_that_service_only() -> None:
    labeler = labeler_with(times=(0, 60))
    assert labeler.feedback("k60", True, service="db") is None
    item = labeler.feedback("k60", True, service="api")
    assert item is not None
    assert (item.ts_s, item.label, item.origin) == (60.0, True, "feedback")


def test_an_old_incident_read_again_after_a_restore_drops_nothing() -> None:
    """Its span was pruned from the snapshot, but its id is remembered: read again from the
    topic's beginning (open first, resolve later), it must not drop buffered vectors as
    inside a span that is still open until its resolve is read."""
    owner = labeler_with(times=(0,))
    owner.opened("api", "inc-1", 400)
    owner.resolved("api", "inc-1", 500)
    for ts in range(5000, 7000, 60):
        owner.add("api", ts, {"x": 1.0}, 0.1, "")
    owner.opened("api", "inc-2", 20_000)  # prunes inc-1's span
    held = len(owner)
    here = HorizonLabeler(CONFIG)
    here.install(owner.export(["api"]))
    assert here.opened("api", "inc-1", 400) == []
    assert len(here) == held
