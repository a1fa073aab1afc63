"""Incident-risk episodes: one firing alert per rise, quiet while high, resolved with
hysteresis, new episodes later; the same across snapshots and batch boundaries; the budget's
vectorised count agrees with the machine."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.incident import RiskConfig
from models.incident.budget import EpisodeBudget
from models.incident.episodes import (
    HELD,
    INCIDENT,
    EpisodeChange,
    RiskEpisodes,
    count_openings,
    episode_id_for,
    resolve_level,
)
from models.snapshot import SnapshotMeta, decode_snapshot, encode_snapshot
from models.state_codec import decode_state, encode_state, serialize_state
from stream.core.incident_risk import IncidentRiskPipeline
from stream.core.pipeline import MetricPipeline
from stream.core.risk_settings import build_risk_pipeline
from stream.detector.snapshot_classes import SNAPSHOT_CLASSES
from stream.dev.incident_sim import IncidentSimulator
from stream.offline.replay import replay
from stream.schemas import Alert
from stream.settings import Settings

STEP = 60.0
THRESHOLD = 0.4
BASE = 0.02  # resolve level: halfway in log-odds, ~0.107


def _through_snapshot(state: Any) -> Any:
    """``state`` written as a snapshot's payload and read back."""
    payload = serialize_state(encode_state(state, SNAPSHOT_CLASSES))
    return decode_state(payload, SNAPSHOT_CLASSES)


def run(
    episodes: RiskEpisodes, risk: list[float], flags: list[int] | None = None, start: int = 0
) -> list[tuple[int, EpisodeChange]]:
    """Feed one service's risk, a vector a minute from step ``start``; the changes by step."""
    flags = flags or [0] * len(risk)
    out = []
    for i, (p, f) in enumerate(zip(risk, flags, strict=True), start=start):
        change = episodes.step("api", i * STEP, p, threshold=THRESHOLD, base_rate=BASE, flags=f)
        if change is not None:
            out.append((i, change))
    return out


def test_a_rise_opens_one_episode_that_stays_quiet_while_high() -> None:
    episodes = RiskEpisodes(open_steps=3, resolve_steps=5)
    risk = [0.05, 0.5, 0.6, 0.7] + [0.9] * 30 + [0.45, 0.3, 0.2] * 10
    (opened,) = run(episodes, risk)
    step, change = opened
    assert step == 3  # the third step at or over the threshold
    assert change.status == "firing"
    assert change.started_s == 1 * STEP  # the first of them
    assert change.episode_id == episode_id_for("incident_risk", "api", STEP)
    assert episodes.is_open("api")
    assert len(episodes) == 1


def test_a_blip_does_not_open_and_a_held_step_restarts_the_count() -> None:
    episodes = RiskEpisodes(open_steps=3, resolve_steps=5)
    assert run(episodes, [0.9, 0.9, 0.1, 0.9, 0.9, 0.1]) == []
    held = [0.9, 0.9, 0.9, 0.9, 0.9]
    assert run(episodes, held, [0, 0, HELD, 0, 0], start=10) == []  # two, held, two
    assert [s for s, _ in run(episodes, [0.9], start=15)] == [15]  # the third in a row


def test_it_resolves_only_after_steps_under_the_resolve_level() -> None:
    episodes = RiskEpisodes(open_steps=1, resolve_steps=3)
    level = resolve_level(THRESHOLD, BASE)
    assert 0.1 < level < 0.11
    just_under_threshold = [0.3] * 20  # under the threshold, over the resolve level: still on
    changes = run(episodes, [0.8, *just_under_threshold, 0.05, 0.05, 0.5, 0.05, 0.05, 0.05])
    assert [(s, c.status) for s, c in changes] == [(0, "firing"), (26, "resolved")]
    (_, opened), (_, resolved) = changes
    assert resolved.reason == "risk_fell"
    assert (resolved.episode_id, resolved.started_s) == (opened.episode_id, opened.started_s)
    assert resolved.ts_s == 26 * STEP


def test_a_later_rise_is_a_new_episode_with_its_own_id() -> None:
    episodes = RiskEpisodes(open_steps=2, resolve_steps=2)
    risk = [0.8, 0.8, 0.05, 0.05, 0.1, 0.8, 0.9]
    changes = run(episodes, risk)
    assert [(s, c.status) for s, c in changes] == [(1, "firing"), (3, "resolved"), (6, "firing")]
    assert changes[0][1].episode_id != changes[2][1].episode_id
    assert changes[2][1].started_s == 5 * STEP


def test_a_known_incident_resolves_at_once_and_opens_nothing() -> None:
    episodes = RiskEpisodes(open_steps=1, resolve_steps=5)
    changes = run(episodes, [0.9, 0.9, 0.99, 0.99, 0.9], [0, 0, INCIDENT, INCIDENT, 0])
    assert [(s, c.status, c.reason) for s, c in changes] == [
        (0, "firing", ""),
        (2, "resolved", "incident_opened"),
        (4, "firing", ""),
    ]


def test_an_open_episode_survives_a_snapshot_round_trip() -> None:
    risk = [0.1, 0.6, 0.7, 0.9, 0.8, 0.2, 0.05, 0.05, 0.05, 0.6, 0.7, 0.7]
    whole = run(RiskEpisodes(open_steps=2, resolve_steps=3), risk)
    first = RiskEpisodes(open_steps=2, resolve_steps=3)
    before = run(first, risk[:5])
    assert first.is_open("api")
    restored = RiskEpisodes(open_steps=2, resolve_steps=3)
    restored.install(_through_snapshot(first.export(["api", "unknown"])))
    assert restored.is_open("api")
    assert before + run(restored, risk[5:], start=5) == whole
    restored.forget(["api"])
    assert not restored.is_open("api")


def _changes(
    risk: list[float], flags: list[int], services: list[int], open_steps: int, resolve_steps: int
) -> list[EpisodeChange]:
    episodes = RiskEpisodes(open_steps=open_steps, resolve_steps=resolve_steps)
    out = []
    for i, (p, f, s) in enumerate(zip(risk, flags, services, strict=True)):
        change = episodes.step(
            f"svc-{s}", i * STEP, p, threshold=THRESHOLD, base_rate=BASE, flags=f
        )
        if change is not None:
            out.append(change)
    return out


streams = st.integers(1, 120).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from([0.01, 0.05, 0.2, 0.39, 0.4, 0.6, 0.95]), min_size=n, max_size=n),
        st.lists(st.sampled_from([0, 0, 0, 0, HELD, INCIDENT]), min_size=n, max_size=n),
        st.lists(st.integers(0, 2), min_size=n, max_size=n),
    )
)


@settings(max_examples=200, deadline=None)
@given(streams, st.integers(1, 4), st.integers(1, 4), st.integers(0, 120))
def test_changes_do_not_depend_on_where_a_stream_is_cut(
    stream: tuple[list[float], list[int], list[int]], open_steps: int, resolve_steps: int, cut: int
) -> None:
    risk, flags, services = stream
    whole = _changes(risk, flags, services, open_steps, resolve_steps)
    # Cut the stream anywhere, snapshot every service's state, go on with a fresh machine.
    first = RiskEpisodes(open_steps=open_steps, resolve_steps=resolve_steps)
    out = []
    for i, (p, f, s) in enumerate(zip(risk, flags, services, strict=True)):
        if i == cut:
            state = _through_snapshot(first.export([f"svc-{k}" for k in range(3)]))
            first = RiskEpisodes(open_steps=open_steps, resolve_steps=resolve_steps)
            first.install(state)
        change = first.step(f"svc-{s}", i * STEP, p, threshold=THRESHOLD, base_rate=BASE, flags=f)
        if change is not None:
            out.append(change)
    assert out == whole


@settings(max_examples=300, deadline=None)
@given(streams, st.integers(1, 4), st.integers(1, 4))
def test_the_vectorised_count_agrees_with_the_machine(
    stream: tuple[list[float], list[int], list[int]], open_steps: int, resolve_steps: int
) -> None:
    risk, flags, services = stream
    opened = sum(
        c.status == "firing" for c in _changes(risk, flags, services, open_steps, resolve_steps)
    )
    # The same vectors as per-service series end to end.
    order = sorted(range(len(risk)), key=lambda i: (services[i], i))
    p = np.array([risk[i] for i in order])
    f = np.array([flags[i] for i in order], dtype=np.uint8)
    s = np.array([services[i] for i in order])
    first = np.r_[True, s[1:] != s[:-1]]
    counted = count_openings(
        p,
        f,
        first,
        threshold=THRESHOLD,
        lower=resolve_level(THRESHOLD, BASE),
        open_steps=open_steps,
        resolve_steps=resolve_steps,
    )
    assert counted == opened


def test_the_resolve_level_is_halfway_to_the_base_rate_in_log_odds() -> None:
    def logit(p: float) -> float:
        return float(np.log(p / (1 - p)))

    level = resolve_level(0.3, 0.01)
    assert logit(level) == pytest.approx((logit(0.3) + logit(0.01)) / 2)
    assert BASE < resolve_level(THRESHOLD, BASE) < THRESHOLD


def _budget_search(rate_per_day: float, budget: float, services: int = 4) -> float | None:
    """A day of ``services`` services whose risk rises for 10 minutes ``rate_per_day`` times
    a day, to a height that grows with each rise (0.2 to 0.9)."""
    config = RiskConfig(episode_budget=budget, open_steps=3, resolve_steps=5)
    search = EpisodeBudget(config, step_s=STEP)
    every = int(1440 / rate_per_day)
    for t in range(1440):
        for s in range(services):
            rise = t // every
            high = (t % every) < 10
            height = 0.2 + 0.7 * ((rise * services + s) % 10) / 9
            search.record(f"svc-{s}", {"x": height if high else 0.01}, incident=False)

    def score(names: tuple[str, ...], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return rows[:, 0].astype(np.float64), np.zeros(len(rows), dtype=bool)

    return search.search(score, base_rate=BASE)


def test_the_budget_threshold_lets_through_about_the_budget() -> None:
    # 12 rises a day per service, heights spread evenly over 10 levels from 0.2 to 0.9.
    everything = _budget_search(12, budget=12.0)
    assert everything is not None
    assert everything <= 0.2 + 1e-6
    half = _budget_search(12, budget=6.0)
    assert half is not None
    assert 0.5 < half <= 0.59
    none = _budget_search(12, budget=0.5, services=20)  # 10 allowed, 24 at each height
    assert none is not None
    assert none > float(np.float32(0.9))  # over the highest probability recorded
    assert _budget_search(12, budget=0.1, services=1) is None  # too little to count on


def test_the_budget_follows_a_sample_of_services_chosen_by_name() -> None:
    config = RiskConfig(episode_budget=2.0)
    a, b = EpisodeBudget(config, STEP), EpisodeBudget(config, STEP)
    names = [f"svc-{i}" for i in range(200)]
    for name in names:
        a.record(name, {"x": 0.1}, incident=False)
    for name in reversed(names):
        b.record(name, {"x": 0.1}, incident=False)
    assert len(a._series) == 64
    assert sorted(a._series) == sorted(b._series)  # the same, whatever the order


def test_the_pipeline_keeps_an_open_episode_through_a_snapshot() -> None:
    settings = Settings()
    sim = IncidentSimulator(services=4, interval_s=30.0, seed=5)
    lines = [item.to_bytes() for item in sim.stream(2 * 86_400)]

    def replayed(
        part: list[bytes], metrics: MetricPipeline, risk: IncidentRiskPipeline
    ) -> list[Alert]:
        return [a for a in replay(part, metrics, risk=risk) if a.kind == "incident_risk"]

    first = replayed(
        lines, MetricPipeline(settings.anomaly_config()), build_risk_pipeline(settings)
    )
    ends = {a.episode_id: a.evidence.offset for a in first if a.status == "resolved"}
    # An episode that lasted a while; the stream cut well inside it.
    firing = next(
        a
        for a in first
        if a.status == "firing" and ends.get(a.episode_id, 0) - a.evidence.offset > 100
    )
    cut = (firing.evidence.offset + ends[firing.episode_id]) // 2
    metrics, risk = MetricPipeline(settings.anomaly_config()), build_risk_pipeline(settings)
    before = replayed(lines[:cut], metrics, risk)
    assert before[-1].episode_id == firing.episode_id
    assert risk.episodes.is_open(firing.service)
    services = [m.service for m in metrics]
    state = {"metrics": metrics.models_of(services), "risk": risk.export(services)}
    _, loaded = decode_snapshot(
        encode_snapshot(
            SnapshotMeta.create(
                topic="metrics",
                partition=0,
                offsets={"metrics:0": cut},
                config_ids={"metrics": "cfg"},
                services=services,
            ),
            state,
            SNAPSHOT_CLASSES,
        ),
        config_ids={"metrics": "cfg"},
        classes=SNAPSHOT_CLASSES,
    )
    metrics_b, risk_b = MetricPipeline(settings.anomaly_config()), build_risk_pipeline(settings)
    metrics_b.install(loaded["metrics"])
    risk_b.install(loaded["risk"])
    assert risk_b.episodes.is_open(firing.service)
    after = replayed(lines[cut:], metrics, risk)

    def comparable(alerts: list[Alert]) -> list[dict[str, object]]:
        return [a.model_dump(exclude={"detected_at"}) for a in alerts]

    assert comparable(replayed(lines[cut:], metrics_b, risk_b)) == comparable(after)
    resolved = next(a for a in after if a.episode_id == firing.episode_id)
    assert (resolved.status, resolved.started_at) == ("resolved", firing.started_at)
    assert resolved.alert_id != firing.alert_id
    # Every episode has one firing alert, then at most one resolved alert, in order.
    status: dict[str, str] = {}
    for alert in before + after:
        assert alert.episode_id is not None
        assert status.get(alert.episode_id) == ("firing" if alert.status == "resolved" else None)
        status[alert.episode_id] = alert.status
