"""stream.core.logs.features and stream.core.logs.explain on hand-made windows."""

from __future__ import annotations

import math

import pytest

from stream.core.logs.explain import top_templates
from stream.core.logs.features import FEATURE_NAMES, WindowStats, template_entropy, window_features
from stream.core.logs.rates import TemplateRates
from stream.core.logs.templates import ServiceTemplates
from stream.schemas import TemplateSample

LINES = [
    ("INFO", "GET /a/1 200 12ms"),
    ("INFO", "GET /a/2 200 15ms"),
    ("INFO", "GET /b/3 200 9ms"),
    ("DEBUG", "pool active=3 idle=5"),
    ("WARN", "slow query took 1200ms"),
    ("ERROR", "upstream timed out after 30s"),
    ("ERROR", "connect: connection refused to 10.0.0.7:5432"),
    ("FATAL", "java.lang.OutOfMemoryError: Java heap space exception\n\tat a.B.c(B.java:3)"),
]


def _window(miner: ServiceTemplates, lines: list[tuple[str, str]]) -> WindowStats:
    stats = WindowStats("api", 0.0)
    for i, (level, message) in enumerate(lines):
        stats.add(level, message, *miner.add(message), i)
    return stats


def test_counts_ratios_and_markers() -> None:
    f = window_features(_window(ServiceTemplates("api"), LINES))
    assert list(f) == list(FEATURE_NAMES)
    assert f["lines"] == 8
    assert (f["lines_info"], f["lines_debug"], f["lines_warn"]) == (3, 1, 1)
    assert (f["lines_error"], f["lines_fatal"]) == (2, 1)
    assert f["ratio_info"] == pytest.approx(3 / 8)
    assert f["ratio_error"] == pytest.approx(2 / 8)
    assert sum(f[f"ratio_{lv}"] for lv in ("debug", "info", "warn", "error", "fatal")) == 1.0
    assert (f["has_timeout"], f["has_connection_error"], f["has_exception"]) == (1, 1, 1)
    lengths = sorted(len(m) for _, m in LINES)
    assert f["msg_len_max"] == lengths[-1]
    assert f["msg_len_mean"] == pytest.approx(sum(lengths) / 8)
    assert f["msg_len_p95"] == lengths[-1]  # nearest rank: ceil(0.95 * 8) = 8th


def test_templates_distinct_new_and_entropy() -> None:
    miner = ServiceTemplates("api")
    f = window_features(_window(miner, LINES))
    # GET x3 share a template; the other five lines are one template each.
    assert f["templates_distinct"] == 6
    assert f["templates_new"] == 6
    expected = -(3 / 8) * math.log2(3 / 8) - 5 * (1 / 8) * math.log2(1 / 8)
    assert f["template_entropy"] == pytest.approx(expected)
    # The same lines again: nothing new, same entropy.
    again = window_features(_window(miner, LINES))
    assert again["templates_new"] == 0
    assert again["template_entropy"] == pytest.approx(expected)


def test_new_error_templates_are_the_new_ones_at_error_or_above() -> None:
    miner = ServiceTemplates("api")
    _window(miner, [("INFO", "GET /a/1 200 12ms"), ("ERROR", "disk full on /var")])
    stats = _window(
        miner,
        [
            ("ERROR", "disk full on /data"),  # seen before
            ("INFO", "cache warmed in 3s"),  # new, but INFO
            ("ERROR", "java.lang.IllegalStateException: closed"),  # new at ERROR
            ("FATAL", "panic: nil map"),  # new at FATAL
        ],
    )
    texts = [stats.templates[t][2].text for t in stats.new_error_templates]
    assert texts == ["java.lang.IllegalStateException: closed", "panic: nil map"]
    assert stats.new_templates == 3


def test_empty_window_counts_zero_and_leaves_ratios_and_lengths_undefined() -> None:
    f = window_features(WindowStats("api", 30.0))
    undefined = {n for n in FEATURE_NAMES if n.startswith(("ratio_", "msg_len_"))}
    assert len(undefined) == 8
    assert list(f) == [n for n in FEATURE_NAMES if n not in undefined]
    assert set(f.values()) == {0.0}


def test_entropy_of_uniform_and_skewed_distributions() -> None:
    assert template_entropy([5, 5, 5, 5]) == pytest.approx(2.0)
    assert 0.0 < template_entropy([97, 1, 1, 1]) < 0.5


def test_top_templates_list_new_then_unusually_frequent_templates() -> None:
    miner = ServiceTemplates("api")
    rates = TemplateRates(alpha=1e-3)
    usual = [("INFO", f"GET /a/{i} 200 5ms") for i in range(20)] + [("INFO", "job done in 2s")]
    for _ in range(30):
        stats = _window(miner, usual)
        rates.learn({t: e[0] for t, e in stats.templates.items()})

    def top(lines: list[tuple[str, str]], **kwargs: int) -> list[TemplateSample]:
        stats = _window(miner, lines)
        verdict = rates.score({t: e[0] for t, e in stats.templates.items()})
        return top_templates(stats, verdict, **kwargs)

    # 2 "job done" against its usual 1 is not unusual: only the new template is listed.
    odd = [*usual, ("INFO", "job done in 3s"), ("ERROR", "x" * 300 + " exception")]
    listed = top(odd, k=3, sample_chars=50)
    assert [t.template for t in listed] == ["x" * 300 + " exception"]
    assert listed[0].count == 1
    assert len(listed[0].sample) == 50
    assert listed[0].sample.endswith("…")
    # 10 against its usual 1 is: after the new template, not the busier GET lines.
    surge = [*usual, *[("INFO", "job done in 3s")] * 9, ("ERROR", "y" * 10 + " exception")]
    assert [(t.template, t.count) for t in top(surge, k=3)] == [
        ("yyyyyyyyyy exception", 1),
        ("job done in <DUR>", 10),
    ]
    # Nothing unusual: the most frequent templates.
    assert [(t.template, t.count) for t in top(usual, k=3)] == [
        ("GET <PATH> <NUM> <DUR>", 20),
        ("job done in <DUR>", 1),
    ]
