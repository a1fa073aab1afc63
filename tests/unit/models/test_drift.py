"""Drift: feature drift flags a planted shift and only it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.drift import FeatureDrift

NAMES = ["cpu", "latency", "errors", "deploys"]


def sample(rng: np.random.Generator, n: int) -> np.ndarray:
    """Four unlike features: normal, skewed, counts, and mostly zero (IQR 0)."""
    return np.c_[
        rng.normal(50.0, 10.0, n),
        rng.lognormal(5.0, 0.5, n),
        rng.poisson(3.0, n).astype(float),
        (rng.random(n) < 0.05).astype(float),
    ]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_same_distribution_does_not_drift(seed: int) -> None:
    rng = np.random.default_rng(seed)
    drift = FeatureDrift(NAMES, sample(rng, 20_000), seed=seed)
    report = drift.check(sample(rng, 3_000))
    assert not report.drifted, report.as_dict()
    assert all(f.p_value is not None for f in report.features)


@pytest.mark.parametrize("column", range(4))
def test_a_planted_shift_drifts_that_feature_only(column: int) -> None:
    rng = np.random.default_rng(10 + column)
    drift = FeatureDrift(NAMES, sample(rng, 20_000), seed=0)
    current = sample(rng, 3_000)
    if column == 3:
        current[:, 3] = (rng.random(3_000) < 0.25).astype(float)  # deploys 5 % -> 25 %
    else:
        current[:, column] += 0.5 * np.std(current[:, column])
    report = drift.check(current)
    assert report.drifted_features == (NAMES[column],)
    shifted = report.features[column]
    assert shifted.p_value < 1e-6
    assert shifted.normalised_wasserstein >= 0.1


def test_a_tiny_significant_shift_is_not_drift() -> None:
    rng = np.random.default_rng(7)
    drift = FeatureDrift(["x"], rng.normal(size=(50_000, 1)), max_samples=50_000)
    report = drift.check(rng.normal(size=(50_000, 1)) + 0.05)
    (x,) = report.features
    assert x.p_value < 0.01  # the KS test alone would call it drift
    assert x.normalised_wasserstein < 0.1
    assert not report.drifted


def test_normalised_by_the_reference_iqr() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(5_000, 1))
    report = FeatureDrift(["x"], reference).check(reference[:2_000] + 1.0)
    iqr = np.subtract(*np.quantile(reference, [0.75, 0.25]))
    (x,) = report.features
    assert x.normalised_wasserstein == pytest.approx(x.wasserstein / iqr)


def test_subsampling_is_deterministic_and_bounded() -> None:
    rng = np.random.default_rng(1)
    reference, current = sample(rng, 30_000), sample(rng, 30_000)
    a = FeatureDrift(NAMES, reference, max_samples=2_000, seed=5).check(current)
    b = FeatureDrift(NAMES, reference, max_samples=2_000, seed=5).check(current)
    c = FeatureDrift(NAMES, reference, max_samples=2_000, seed=6).check(current)
    assert a == b
    assert a != c
    assert {(f.n_reference, f.n_current) for f in a.features} == {(2_000, 2_000)}
    json.dumps(a.as_dict())


def test_missing_and_sparse_features_are_left_untested() -> None:
    rng = np.random.default_rng(2)
    drift = FeatureDrift(NAMES, sample(rng, 5_000), min_samples=50)
    current = sample(rng, 1_000)[:, :3]
    current[40:, 2] = np.nan
    report = drift.check(current, names=NAMES[:3])
    untested = {f.name for f in report.features if f.ks_statistic is None}
    assert untested == {"errors", "deploys"}
    assert not report.drifted


def test_constant_reference_scale_is_one() -> None:
    report = FeatureDrift(["x"], np.zeros((1_000, 1))).check(np.full((1_000, 1), 0.5))
    assert report.features[0].normalised_wasserstein == pytest.approx(0.5)
    assert report.drifted
