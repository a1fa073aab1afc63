"""stream.core.logs.rates: a known template's count against its own learned distribution."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from models.snapshot import SnapshotMeta, decode_snapshot, encode_snapshot
from stream.core.logs.rate_verdict import RateVerdict
from stream.core.logs.rates import TemplateRates
from stream.core.logs.tails import tail_probability
from stream.detector.snapshot_classes import SNAPSHOT_CLASSES

# Usual counts per window of a service's templates: busy, steady, rare ones.
RATES = {"get": 30.0, "cache": 8.0, "timeout": 2.0, "job": 1.0, "declined": 0.3, "rare": 0.05}


def _windows(rng: np.random.Generator, n: int, rates: dict[str, float]) -> list[dict[str, int]]:
    """``n`` windows of Poisson counts (templates with no line left out, as in a window)."""
    out = []
    for _ in range(n):
        counts = {t: int(rng.poisson(r)) for t, r in rates.items()}
        out.append({t: c for t, c in counts.items() if c})
    return out


def _learned(n: int = 400, seed: int = 1, **kwargs: float) -> TemplateRates:
    rates = TemplateRates(**kwargs)  # type: ignore[arg-type]
    for counts in _windows(np.random.default_rng(seed), n, RATES):
        rates.learn(counts, rates.score(counts))
    return rates


def test_nothing_is_tested_before_anything_is_learned() -> None:
    rates = TemplateRates()
    verdict = rates.score({"get": 500})
    assert verdict == RateVerdict(tested=0, p_value=1.0, alpha=rates.alpha)
    assert not verdict.flagged
    assert verdict.surprise == 0.0
    assert rates.windows_learned == 0
    assert len(rates) == 0


def test_score_learns_nothing() -> None:
    rates = _learned()
    before = copy.deepcopy(rates)
    for _ in range(3):
        rates.score({"get": 90, "timeout": 20})
    assert rates.windows_learned == before.windows_learned
    assert rates.score({"timeout": 5}) == before.score({"timeout": 5})


def test_false_alert_rate_on_poisson_counts_is_at_most_alpha() -> None:
    alpha = 0.01  # large enough to measure in a few thousand windows
    rates = _learned(300, seed=2, alpha=alpha)
    windows = _windows(np.random.default_rng(3), 5000, RATES)
    flagged = sum(rates.observe(counts).flagged for counts in windows)
    # Bonferroni over the templates tested and discrete counts: at most alpha, not far below.
    assert alpha / 10 <= flagged / len(windows) <= alpha


def test_a_tenfold_burst_of_a_known_template_is_flagged_and_named() -> None:
    rates = _learned()
    verdict = rates.score({"get": 31, "cache": 7, "timeout": 20, "job": 1})
    assert verdict.flagged
    assert verdict.tested == 4
    top = verdict.templates[0]
    assert (top.template_id, top.count) == ("timeout", 20)
    assert top.expected == pytest.approx(2.0, rel=0.2)
    assert top.ratio > 7
    assert verdict.significant == verdict.templates[:1]
    assert verdict.surprise > verdict.threshold == pytest.approx(-np.log10(rates.alpha))


def test_an_ordinary_window_and_a_new_template_are_not_flagged() -> None:
    rates = _learned()
    assert not rates.score({"get": 33, "cache": 10, "timeout": 4, "job": 2}).flagged
    # A template never learned is not tested: new templates are the new-template rule's.
    verdict = rates.score({"get": 30, "brand-new": 400})
    assert (verdict.flagged, verdict.tested) == (False, 1)


def test_a_rare_template_needs_more_than_one_line_to_stand_out() -> None:
    rates = _learned()
    usual = {"get": 30, "cache": 8, "timeout": 2, "job": 1}
    assert not rates.score({**usual, "rare": 1}).flagged
    assert rates.score({**usual, "rare": 6}).flagged


def test_a_template_that_is_bursty_by_nature_is_not_flagged_when_it_bursts() -> None:
    # Two templates with the same mean (1 line a window): one steady, one writing 20 lines in
    # one window of 20 (a batch job). Twenty lines are ordinary for the second only.
    rates = TemplateRates()
    rng = np.random.default_rng(4)
    for w in range(600):
        counts = {"steady": int(rng.poisson(1.0)), "batch": 20 if w % 20 == 0 else 0}
        counts = {t: c for t, c in counts.items() if c}
        rates.learn(counts, rates.score(counts))
    assert not rates.score({"batch": 20}).flagged
    assert rates.score({"steady": 20}).flagged


def test_over_dispersion_widens_the_tail() -> None:
    poisson = tail_probability(12, 3.0, 3.0)
    assert tail_probability(12, 3.0, 9.0) > 100 * poisson
    assert tail_probability(3, 3.0, 3.0) > 0.5
    assert tail_probability(0, 3.0, 9.0) == 1.0


def test_a_burst_barely_moves_the_baseline_and_the_next_burst_still_stands_out() -> None:
    rates = _learned()
    expected = rates.expected("timeout")
    burst = {"get": 30, "cache": 8, "timeout": 20}
    flagged = [rates.observe(burst).flagged for _ in range(8)]  # four minutes at 30 s windows
    assert all(flagged)
    assert rates.expected("timeout") < 1.2 * expected
    for counts in _windows(np.random.default_rng(5), 120, RATES):  # an hour later
        rates.observe(counts)
    assert rates.observe(burst).flagged


def test_a_lasting_change_of_rate_is_learned() -> None:
    rates = _learned()
    shifted = dict(RATES, timeout=20.0)
    flagged = [rates.observe(c).flagged for c in _windows(np.random.default_rng(6), 400, shifted)]
    assert all(flagged[:8])
    first_calm = flagged.index(False)
    assert sum(flagged[-100:]) == 0, first_calm
    assert rates.expected("timeout") > 10


def test_a_window_not_learned_does_not_count_at_all() -> None:
    rates = _learned()
    twin = copy.deepcopy(rates)
    rates.observe({"get": 300, "timeout": 60}, learn=False)
    rates.observe({}, learn=False)  # nor as a window of zeros
    assert rates.windows_learned == twin.windows_learned
    for counts in _windows(np.random.default_rng(7), 20, RATES):
        assert rates.observe(counts) == twin.observe(counts)


def test_state_survives_a_snapshot_with_identical_verdicts() -> None:
    rates = _learned()
    meta = SnapshotMeta.create(
        topic="vigil.logs", partition=0, offsets={}, config_ids={"logs": "c"}, services=["api"]
    )
    blob = encode_snapshot(meta, rates, SNAPSHOT_CLASSES)
    _, restored = decode_snapshot(blob, config_ids={"logs": "c"}, classes=SNAPSHOT_CLASSES)
    assert isinstance(restored, TemplateRates)
    for counts in _windows(np.random.default_rng(8), 50, dict(RATES, timeout=6.0)):
        assert restored.observe(counts) == rates.observe(counts)


def test_templates_are_capped_least_recently_seen_first() -> None:
    rates = TemplateRates(capacity=100)
    for w in range(1000):
        rates.learn({"get": 30, f"one-off-{w}": 1})
    assert len(rates) <= 100
    assert rates.expected("get") == pytest.approx(30.0, rel=0.05)
    assert rates.expected("one-off-999") > 0
    assert rates.expected("one-off-0") == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [{"alpha": 0.0}, {"alpha": 1.0}, {"halflife_windows": 0}, {"capacity": 0}, {"pool_lines": 0}],
)
def test_bad_arguments_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        TemplateRates(**kwargs)  # type: ignore[arg-type]


def test_a_busy_service_falling_silent_is_flagged_a_sparse_one_is_not() -> None:
    busy = _learned()  # about 41 lines a window
    verdict = busy.score({})
    assert verdict.flagged
    assert verdict.silent
    assert verdict.quiet is not None
    assert verdict.quiet.count == 0
    assert verdict.quiet.expected == pytest.approx(41.35, rel=0.1)
    assert verdict.tests == 1
    assert verdict.templates == ()
    # A quarter of its usual volume is unusual too (half is not, at alpha 1e-4).
    assert busy.score({"get": 8, "cache": 2}).silent
    assert not busy.score({"get": 15, "cache": 4}).flagged
    assert not busy.score({"get": 30, "cache": 8, "timeout": 2, "job": 1}).flagged
    sparse = TemplateRates()
    rng = np.random.default_rng(6)
    for _ in range(2000):  # a line every 20 windows
        counts = {"ping": 1} if rng.random() < 0.05 else {}
        sparse.learn(counts, sparse.score(counts))
    assert sparse.expected_lines() == pytest.approx(0.05, abs=0.02)
    assert not sparse.score({}).flagged


def test_a_long_silence_is_learned_slowly_not_as_the_new_normal_at_once() -> None:
    rates = _learned(halflife_windows=100.0)
    flagged = []
    for _ in range(30):
        verdict = rates.observe({})
        flagged.append(verdict.silent)
    assert all(flagged[:20])  # learned as mean - 3 sd each window: 10 minutes stay unusual
