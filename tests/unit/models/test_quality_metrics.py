"""models.alert_quality's metrics (benchmarks/quality.py) on tiny hand-made cases;
every expected value below is worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from models.alert_quality import (
    AlertQuality,
    alert_quality,
    alert_spans,
    segment_hits,
    span_flags,
)
from models.evaluation import close_gaps


def test_alerts_without_episodes_cover_their_own_sample() -> None:
    # Detectors before episodes (no status) and river: one sample each, in index order.
    assert alert_spans([(7, None, None), (3, None, None), (3, "firing", None)], 10) == [
        (3, 3),
        (3, 3),
        (7, 7),
    ]


def test_an_episode_spans_from_firing_to_the_sample_before_its_resolution() -> None:
    alerts = [
        (9, "resolved", "a"),  # given out of order: sorted by index first
        (4, "firing", "a"),
        (5, "firing", "b"),  # never resolved: open to the last sample (19)
        (6, "resolved", "c"),  # closes nothing that fired
        (12, "firing", "d"),
        (12, "resolved", "d"),  # resolved on its own sample: the sample alone
    ]
    assert alert_spans(alerts, 20) == [(4, 8), (5, 19), (12, 12)]


def test_an_episode_is_closed_by_its_first_resolution_after_it_fired() -> None:
    alerts = [(1, "resolved", "e"), (3, "firing", "e"), (7, "resolved", "e"), (9, "resolved", "e")]
    assert alert_spans(alerts, 10) == [(3, 6)]


def test_span_flags_clip_and_overlap() -> None:
    flags = span_flags([(-2, 1), (3, 4), (4, 6), (9, 12)], 10)
    assert flags.astype(int).tolist() == [1, 1, 0, 1, 1, 1, 1, 0, 0, 1]
    assert not span_flags([(-5, -1), (10, 11)], 10).any()


def test_close_gaps() -> None:
    labels = np.array([0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0], dtype=bool)
    # Marks at 1, 3, 6 and 10: gaps of 1, 2 and 3 normal points.
    assert close_gaps(labels, 0).tolist() == labels.tolist()
    assert close_gaps(labels, 1).astype(int).tolist() == [0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0]
    assert close_gaps(labels, 2).astype(int).tolist() == [0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0]
    assert not close_gaps(np.zeros(4, dtype=bool), 3).any()


def test_segment_hits_window_is_start_to_end_plus_tolerance() -> None:
    # Segment (10, 12): window [10, 15]. 9 is early, 16 is late; 10, 15 count.
    assert segment_hits([(10, 12)], [9, 16, 15, 10]) == [(2, 0)]
    assert segment_hits([(10, 12)], [13], tolerance=0) == [(0, None)]
    assert segment_hits([(10, 12)], [], tolerance=3) == [(0, None)]


def test_point_and_episode_figures_of_a_pointwise_detector() -> None:
    labels = [0] * 20
    labels[2:5] = [1, 1, 1]  # segment (2, 4): window [2, 7]
    labels[12] = 1  # segment (12, 12): window [12, 15]
    spans = [(3, 3), (4, 4), (7, 7), (8, 8), (16, 16), (19, 19)]
    q = alert_quality(labels, spans, sample_s=3600.0)
    # Point-wise: flagged 3, 4, 7, 8, 16, 19 (6 points), anomalous among them 3, 4 (2 of 4).
    assert (q.points, q.anomalous, q.flagged, q.flagged_anomalous) == (20, 4, 6, 2)
    assert q.precision == pytest.approx(2 / 6)
    assert q.recall == pytest.approx(2 / 4)
    assert q.f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))  # 0.4
    # Point-adjusted: the first segment has flags, so 2, 3, 4 count flagged (7 flagged, 3 of
    # them anomalous); the second (12) has none. P 3/7, R 3/4.
    assert (q.adjusted_flagged, q.adjusted_anomalous) == (7, 3)
    assert q.adjusted_f1 == pytest.approx(2 * (3 / 7) * (3 / 4) / (3 / 7 + 3 / 4))  # 0.545
    # Episode-wise: first segment caught by 3, 4 and 7 (delay 1); the second missed
    # (16 is one past its window). True alerts 3 of 6; false 8, 16, 19.
    assert (q.segments, q.caught, q.alerts, q.true_alerts) == (2, 1, 6, 3)
    assert q.episode_precision == pytest.approx(0.5)
    assert q.episode_recall == pytest.approx(0.5)
    assert q.episode_f1 == pytest.approx(0.5)
    assert q.alerts_per_caught == pytest.approx(3.0)
    assert q.median_delay == 1.0
    # 20 hourly samples are 20/24 of a service-day: 3 false alerts / (5/6) = 3.6 per day.
    assert q.false_alerts == 3
    assert q.false_per_service_day == pytest.approx(3.6)


def test_an_episode_flags_its_span_and_counts_as_one_alert() -> None:
    labels = np.zeros(20, dtype=bool)
    labels[5:9] = True  # segment (5, 8)
    spans = alert_spans([(6, "firing", "x"), (12, "resolved", "x")], 20)  # [(6, 11)]
    q = alert_quality(labels, spans, sample_s=60.0)
    # Flags 6..11 (6 points), anomalous among them 6, 7, 8: P 3/6, R 3/4, F1 0.6.
    assert (q.flagged, q.flagged_anomalous) == (6, 3)
    assert q.f1 == pytest.approx(0.6)
    assert (q.alerts, q.true_alerts, q.caught, q.delays) == (1, 1, 1, (1,))
    assert q.episode_f1 == 1.0
    assert q.alerts_per_caught == 1.0


def test_a_span_from_an_unscored_part_flags_but_does_not_fire() -> None:
    # An ASD alert in the train half (index -3 in the test half) still open for 2 samples.
    q = alert_quality([1, 1, 0, 0], [(-3, 1)], sample_s=300.0)
    assert (q.flagged, q.flagged_anomalous, q.alerts, q.caught) == (2, 2, 0, 0)


def test_no_alerts_and_no_segments() -> None:
    quiet = alert_quality([0, 1, 0], [], sample_s=60.0)
    assert (quiet.precision, quiet.recall, quiet.episode_precision, quiet.episode_f1) == (
        0.0,
        0.0,
        0.0,
        0.0,
    )
    assert quiet.alerts_per_caught is None
    assert quiet.median_delay is None
    # A degenerate stream: nothing labelled, every alert is false. 1,440 minutes = 1 day.
    flat = alert_quality(np.zeros(1440, dtype=bool), [(600, 600), (900, 900)], sample_s=60.0)
    assert (flat.segments, flat.false_alerts, flat.episode_recall) == (0, 2, 0.0)
    assert flat.false_per_service_day == pytest.approx(2.0)


def test_counts_add_up_over_services() -> None:
    a = alert_quality([0, 1, 1, 0], [(1, 1)], sample_s=21_600.0)  # caught, delay 0, 1 day
    b = alert_quality([1, 0, 0, 0, 0, 0, 0, 0], [(7, 7)], sample_s=10_800.0)  # missed, 1 day
    total = a + b
    assert isinstance(total, AlertQuality)
    assert (total.points, total.segments, total.caught, total.alerts, total.true_alerts) == (
        12,
        2,
        1,
        2,
        1,
    )
    assert total.delays == (0,)
    assert total.service_days == pytest.approx(2.0)
    assert total.false_per_service_day == pytest.approx(0.5)  # 1 false alert in 2 days
    # Pooled, not averaged: recall 1 point of 3 anomalous.
    assert total.recall == pytest.approx(1 / 3)
    assert total.as_dict()["episode_recall"] == 0.5
