"""Incident-risk state per partition (``state="partition"``): a partition's probabilities and
risk alerts are a function of its own events and labels, however the batches are cut, however
its events are interleaved with another partition's, and through a snapshot taken anywhere."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from models.incident import RiskConfig
from models.state_codec import decode_state, encode_state, serialize_state
from stream.codec import decode
from stream.core.incident_risk import IncidentRiskPipeline
from stream.core.pipeline import MetricPipeline
from stream.detector.snapshot_classes import SNAPSHOT_CLASSES
from stream.dev.incident_sim import IncidentSimulator
from stream.dev.simulate import SimulatedEvent
from stream.schemas import Alert, Evidence, IncidentEvent, MetricEvent
from stream.settings import Settings

Item = MetricEvent | IncidentEvent
Seen = tuple[str, float, float, float]
"""A prediction: service, event time, probability, threshold in force."""

CONFIGS = {
    # Budget high enough to page within hours of 4 services (the default's 2.5 needs days).
    "episode_budget": RiskConfig(episode_budget=20.0),
    "alert_budget": RiskConfig(strategy="alert_budget", alert_budget=0.02),
}


@functools.cache
def _items(prefix: str, seed: int, hours: float = 9.0) -> tuple[Item, ...]:
    """4 services, a sample every 20 s (3 a step), many incidents; names and incident ids
    start ``prefix``."""
    sim = IncidentSimulator(
        services=4, interval_s=20.0, incidents_per_day=12.0, clean_start_s=3600.0, seed=seed
    )
    out: list[Item] = []
    for item in sim.stream(hours * 3600):
        if isinstance(item, SimulatedEvent):
            event = decode(item.to_bytes(), MetricEvent)
            assert isinstance(event, MetricEvent)
            out.append(event.model_copy(update={"service": prefix + event.service}))
        else:
            label = decode(item.to_bytes(), IncidentEvent)
            assert isinstance(label, IncidentEvent)
            renamed = {"service": prefix + label.service, "incident_id": prefix + label.incident_id}
            out.append(label.model_copy(update=renamed))
    return tuple(out)


class _Run:
    """A metric pipeline and a per-partition risk pipeline fed items in batches of ``batch``
    metric events (a label flushes the batch before it, as ``vigil replay`` does)."""

    def __init__(self, config: RiskConfig, partition_of: Callable[[str], int]) -> None:
        self.metrics = MetricPipeline(Settings().anomaly_config())
        self.risk = IncidentRiskPipeline(config, state="partition")
        self.partition_of = partition_of
        self.seen: list[Seen] = []
        self.risk.on_predicted = lambda *seen: self.seen.append(seen)
        self.alerts: list[Alert] = []
        self.offsets: dict[int, int] = {}

    def feed(self, items: Sequence[Item], batch: int) -> None:
        events: list[MetricEvent] = []
        where: list[Evidence] = []
        for item in items:
            if isinstance(item, MetricEvent):
                partition = self.partition_of(item.service)
                offset = self.offsets[partition] = self.offsets.get(partition, -1) + 1
                events.append(item)
                where.append(Evidence(topic="m", partition=partition, offset=offset))
                if len(events) >= batch:
                    self._flush(events, where)
            else:
                self._flush(events, where)
                self.risk.on_incident(item)
        self._flush(events, where)

    def _flush(self, events: list[MetricEvent], where: list[Evidence]) -> None:
        if not events:
            return
        located = list(where)
        outcome = self.metrics.process_batch(events, located.__getitem__)
        self.alerts += self.risk.on_metrics(events, outcome, located.__getitem__).alerts
        self.risk.advance()  # nothing per partition: horizons pass on each one's own grid
        events.clear()
        where.clear()


def _alerts(alerts: Sequence[Alert], prefix: str = "") -> list[tuple[Any, ...]]:
    return [
        (a.alert_id, a.service, a.event_ts, a.status, a.score, a.threshold)
        for a in alerts
        if a.service.startswith(prefix)
    ]


def _partition_of(service: str) -> int:
    return 0 if service.startswith("a-") else 5


@functools.cache
def _alone(strategy: str, prefix: str, batch: int) -> _Run:
    """One partition's items alone (``a-``: seed 3, ``b-``: seed 4), in batches of ``batch``."""
    run = _Run(CONFIGS[strategy], _partition_of)
    run.feed(_items(prefix, 3 if prefix == "a-" else 4), batch)
    return run


@pytest.mark.parametrize(
    ("strategy", "batch"),
    [("episode_budget", 1), ("episode_budget", 7), ("alert_budget", 7)],
)
def test_a_partition_cut_into_batches_of_1_7_or_all_gives_the_same_alerts(
    strategy: str, batch: int
) -> None:
    whole = _alone(strategy, "a-", 1_000_000)
    assert len([a for a in whole.alerts if a.status == "firing"]) >= 3, "nothing is checked"
    run = _alone(strategy, "a-", batch)
    assert run.seen == whole.seen  # every probability and threshold, bit for bit
    assert _alerts(run.alerts) == _alerts(whole.alerts)


def test_each_partition_alerts_as_it_would_alone_however_the_others_interleave() -> None:
    a, b = _items("a-", 3), _items("b-", 4)
    alone = {prefix: _alone("episode_budget", prefix, 1_000_000) for prefix in ("a-", "b-")}
    assert all(len([x for x in r.alerts if x.status == "firing"]) >= 3 for r in alone.values())
    for seed, batch in ((1, 500), (2, 37)):
        mixed = _merge(a, b, random.Random(seed))  # each partition's items in their order
        run = _Run(CONFIGS["episode_budget"], _partition_of)
        run.feed(mixed, batch)
        for prefix in ("a-", "b-"):
            assert _alerts(run.alerts, prefix) == _alerts(alone[prefix].alerts)
            assert [s for s in run.seen if s[0].startswith(prefix)] == alone[prefix].seen
        assert sorted(run.risk.thresholds()) == ["all@0", "all@5"]


def _merge(a: Sequence[Item], b: Sequence[Item], rng: random.Random) -> list[Item]:
    """``a`` and ``b`` interleaved at random, each in its own order."""
    out: list[Item] = []
    i = j = 0
    while i < len(a) or j < len(b):
        if j >= len(b) or (i < len(a) and rng.random() < 0.5):
            step = rng.randint(1, 40)
            out += a[i : i + step]
            i += step
        else:
            step = rng.randint(1, 40)
            out += b[j : j + step]
            j += step
    return out


def test_a_partition_restored_anywhere_goes_on_as_if_never_moved() -> None:
    """Partition 0's state, snapshotted (through the snapshot codec) mid-stream and
    installed in a pipeline that holds another partition, alerts as the uninterrupted run;
    the other partition's state is untouched by it."""
    a, b = _items("a-", 3), _items("b-", 4)
    partition_of = _partition_of
    whole = _alone("episode_budget", "a-", 1_000_000)
    cut = len(a) // 2
    first = _Run(CONFIGS["episode_budget"], partition_of)
    first.feed(a[:cut], 200)
    services = [m.service for m in first.metrics]
    state = {"metrics": first.metrics.models_of(services), "risk": first.risk.export(services, 0)}
    restored = decode_state(
        serialize_state(encode_state(state, SNAPSHOT_CLASSES)), SNAPSHOT_CLASSES
    )
    second = _Run(CONFIGS["episode_budget"], partition_of)
    second.feed(b, 300)  # another partition's lane (5), learned first
    before_b = _alerts(second.alerts)
    second.metrics.install(restored["metrics"])
    second.risk.install(restored["risk"], 0)
    second.offsets[0] = first.offsets[0]
    second.alerts, second.seen = [], []
    second.feed(a[cut:], 77)
    tail = [s for s in whole.seen if s not in first.seen]
    assert second.seen == tail
    assert _alerts(first.alerts + second.alerts) == _alerts(whole.alerts)
    assert before_b, "partition 1 raised nothing: its lane is not exercised"


@pytest.mark.parametrize("state", ["partition", "detector"])
def test_horizons_pass_on_a_partitions_own_grid(state: str) -> None:
    """Per partition, another partition running hours ahead in event time moves nothing in
    partition 0 (its negatives are learned on its own grid, at its vectors' times). Pooled,
    its vectors let partition 0's horizons pass early: the probabilities differ."""
    a, b = _items("a-", 3, hours=3.0), _items("b-", 4, hours=6.0)
    start = next(i for i in a if isinstance(i, MetricEvent)).ts.timestamp()
    ahead = [i for i in b if isinstance(i, MetricEvent) and i.ts.timestamp() >= start + 2 * 3600]

    def run(items: Sequence[Item]) -> _Run:
        out = _Run(CONFIGS["episode_budget"], _partition_of)
        out.risk = IncidentRiskPipeline(CONFIGS["episode_budget"], state=state)  # type: ignore[arg-type]
        out.risk.on_predicted = lambda *seen: out.seen.append(seen)
        out.feed(items, 300)
        return out

    alone = run(a)
    together = run([x for pair in zip(a, ahead, strict=False) for x in pair])
    assert len(ahead) >= len(a)
    assert alone.risk.labeler.counts["negative"] > 0
    mine = [s for s in together.seen if s[0].startswith("a-")]
    assert (mine == alone.seen) is (state == "partition")
