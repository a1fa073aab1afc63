"""stream.dev.planted: seeded planted-anomaly streams whose ground truth is where the data moved,
and degenerate metric streams of the stated shapes."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from itertools import pairwise

import numpy as np
import pytest

from stream.dev.planted import (
    DEGENERATE_KINDS,
    KIND_COUNTS,
    PlantedEpisode,
    PlantedStream,
    degenerate_events,
    degenerate_values,
)

SMALL = PlantedStream(services=3, days=4, clean_days=1, positives=12, benign=3, seed=5)


def index(stream: PlantedStream, episode: PlantedEpisode) -> tuple[int, int]:
    """The episode's first and last judged sample."""
    step = timedelta(seconds=stream.interval_s)
    return (episode.start - stream.start) // step, (episode.end - stream.start) // step


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    again = PlantedStream(services=3, days=4, clean_days=1, positives=12, benign=3, seed=5)
    assert list(SMALL.events()) == list(again.events())
    assert SMALL.episodes() == again.episodes()
    other = PlantedStream(services=3, days=4, clean_days=1, positives=12, benign=3, seed=6)
    assert SMALL.episodes() != other.episodes()


def test_events_are_interleaved_in_event_time() -> None:
    events = list(SMALL.events())
    assert len(events) == SMALL.services * SMALL.samples
    assert [e["service"] for e in events[:3]] == SMALL.names
    assert events[0]["ts"] == events[2]["ts"] < events[3]["ts"]


def test_the_default_mix_and_spacing() -> None:
    stream = PlantedStream()
    episodes = stream.episodes()
    assert Counter(e.kind for e in episodes) == {**KIND_COUNTS, "benign_drop": 8}
    clean_end = stream.start + timedelta(days=stream.clean_days)
    assert all(e.start >= clean_end for e in episodes)
    for name in stream.names:
        own = [e for e in episodes if e.service == name]
        for before, after in pairwise(own):
            assert (after.start - before.end).total_seconds() >= stream.min_gap_s


def test_ground_truth_is_where_the_data_moved() -> None:
    planted, clean = SMALL.series(), SMALL.series(planted=False)
    episodes = SMALL.episodes()
    for name in SMALL.names:
        own = [e for e in episodes if e.service == name]
        for metric, values in planted[name].items():
            moved = np.flatnonzero(values != clean[name][metric])
            explained = np.zeros(SMALL.samples, dtype=bool)
            for e in own:
                if metric in e.metrics:
                    first, last = index(SMALL, e)
                    explained[first : SMALL.samples if e.kind == "level_shift" else last + 1] = True
            assert explained[moved].all(), (name, metric)
    for e in episodes:
        first, last = index(SMALL, e)
        for metric in e.metrics:
            base = clean[e.service][metric]
            move = planted[e.service][metric][first : last + 1] - base[first : last + 1]
            noise = float(np.std(np.diff(base))) / np.sqrt(2)  # the short-term noise
            if e.kind == "benign_drop" and metric == "err_5xx":
                assert (planted[e.service][metric][first : last + 1] == 0).all()
                continue
            assert np.abs(move).max() >= 5 * noise, e
            sign = 1 if e.direction == "up" else -1
            assert (sign * move >= 0).all(), e


def test_a_correlation_break_keeps_each_metric_in_its_usual_range() -> None:
    stream = PlantedStream(services=6, days=5, clean_days=1, positives=24, benign=0, seed=3)
    planted, clean = stream.series(), stream.series(planted=False)
    breaks = [e for e in stream.episodes() if e.kind == "correlation_break"]
    assert breaks
    for e in breaks:
        first, last = index(stream, e)
        (metric,) = e.metrics
        base = clean[e.service][metric]
        noise = float(np.std(np.diff(base))) / np.sqrt(2)
        window = planted[e.service][metric][first : last + 1]
        assert base.min() - 3 * noise <= window.min()
        assert window.max() <= base.max() + 3 * noise


def test_too_many_episodes_are_refused() -> None:
    with pytest.raises(ValueError, match="too many episodes"):
        PlantedStream(services=1, days=3, clean_days=2, positives=10, benign=0).episodes()


def test_degenerate_shapes() -> None:
    constant = degenerate_values("constant")
    assert constant.size == 10_000
    assert (constant == 3.0).all()
    sparse = degenerate_values("mostly_zero")
    assert 0.01 < sparse.mean() < 0.03
    assert (sparse == np.round(sparse)).all()
    quantized = degenerate_values("quantized")
    shares = {v: float(np.mean(quantized == v)) for v in (2.0, 3.0, 4.0, 5.0)}
    assert sum(shares.values()) == 1.0
    assert shares == pytest.approx({2.0: 0.1, 3.0: 0.6, 4.0: 0.25, 5.0: 0.05}, abs=0.02)
    steps = np.diff(degenerate_values("monotone"))
    assert (steps >= 0).all()
    assert steps.mean() == pytest.approx(5.0, abs=0.2)


@pytest.mark.parametrize("kind", DEGENERATE_KINDS)
def test_degenerate_events_one_service_one_metric_every_minute(kind: str) -> None:
    events = list(degenerate_events(kind))
    assert len(events) == 10_000
    assert {e["service"] for e in events} == {f"degenerate-{kind}"}
    assert {len(e["metrics"]) for e in events} == {1}
    assert events[-1]["ts"] == "2026-11-29T22:39:00Z"  # 9,999 minutes after the start
    assert list(degenerate_events(kind, 50, seed=1)) == list(degenerate_events(kind, 50, seed=1))
