"""Drift: has the data moved away from what a model was trained on? (pure computation).

:class:`FeatureDrift` compares each feature's recent values to a reference (the training
window) with a two-sample Kolmogorov-Smirnov test and a normalised Wasserstein distance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

# scipy ships no type information; it is installed with scikit-learn. Wrapped in _ks/_wasserstein.
from scipy import stats as scipy_stats

__all__ = ["DriftReport", "FeatureDrift", "FeatureDriftResult"]

FloatArray = npt.NDArray[np.float64]

_EXACT_KS_MAX = 10_000


def _ks(reference: FloatArray, current: FloatArray) -> tuple[float, float]:
    """Two-sample KS statistic and two-sided p-value: exact while the product of the sample
    sizes is at most 10,000, asymptotic beyond (scipy's exact method can fail there, with a
    warning, and the asymptotic one is accurate at those sizes)."""
    method = "exact" if reference.size * current.size <= _EXACT_KS_MAX else "asymp"
    result = scipy_stats.ks_2samp(reference, current, method=method)
    return float(result.statistic), float(result.pvalue)


def _wasserstein(reference: FloatArray, current: FloatArray) -> float:
    """The 1-Wasserstein (earth mover's) distance between two samples."""
    return float(scipy_stats.wasserstein_distance(reference, current))


@dataclass(frozen=True, slots=True)
class FeatureDriftResult:
    """One feature's drift test; statistics are None when either side had too few values.

    Attributes:
        name: The feature.
        n_reference: Non-NaN reference values tested (after subsampling).
        n_current: Non-NaN current values tested (after subsampling).
        ks_statistic: The largest gap between the two empirical CDFs.
        p_value: The KS test's two-sided p-value.
        wasserstein: The earth mover's distance, in the feature's units.
        normalised_wasserstein: ``wasserstein`` divided by the reference's scale.
        drifted: Both thresholds crossed.

    Examples:
        >>> report = FeatureDrift(["x"], np.zeros((100, 1))).check(np.ones((100, 1)))
        >>> x = report.features[0]
        >>> x.name, x.ks_statistic, x.normalised_wasserstein, x.drifted
        ('x', 1.0, 1.0, True)
    """

    name: str
    n_reference: int
    n_current: int
    ks_statistic: float | None
    p_value: float | None
    wasserstein: float | None
    normalised_wasserstein: float | None
    drifted: bool


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Every reference feature's result, and whether any drifted.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> drift = FeatureDrift(["a", "b"], rng.normal(size=(500, 2)))
        >>> report = drift.check(rng.normal(size=(500, 2)) + [2.0, 0.0])
        >>> report.drifted_features, report.as_dict()["features"][0]["drifted"]
        (('a',), True)
    """

    features: tuple[FeatureDriftResult, ...]
    drifted: bool

    @property
    def drifted_features(self) -> tuple[str, ...]:
        """The names of the features that drifted."""
        return tuple(f.name for f in self.features if f.drifted)

    def as_dict(self) -> dict[str, Any]:
        """Plain values, JSON-ready."""
        return {"drifted": self.drifted, "features": [asdict(f) for f in self.features]}


class FeatureDrift:
    """Per-feature drift of recent rows against a reference sample.

    A feature drifts when the KS test rejects "same distribution" (``p < p_value``) *and*
    the shift matters: the Wasserstein distance divided by the reference's interquartile
    range (its standard deviation when the IQR is 0, as for mostly-zero features; 1 when
    both are 0) is at least ``min_distance``. With thousands of rows the KS test alone
    flags shifts too small to matter; the distance alone ignores sampling noise.

    NaN values are left out. Either side is cut to ``max_samples`` values by a seeded
    random subsample (without replacement), which bounds the cost and keeps the p-values
    honest about the sample sizes used. Features with fewer than ``min_samples`` values on
    either side are reported untested. Same seed and inputs, same report.

    Args:
        names: The reference's columns.
        reference: Reference rows, [n, len(names)] (e.g. a model's training window).
        p_value: KS significance level.
        min_distance: Smallest normalised Wasserstein distance that counts as drift.
        max_samples: Values per feature and side kept for the tests.
        min_samples: Fewest values per side to test a feature.
        seed: Seed of the subsampling.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> drift = FeatureDrift(["cpu", "mem"], rng.normal(size=(2_000, 2)), seed=1)
        >>> current = rng.normal(size=(1_000, 2)) + [0.0, 1.0]
        >>> report = drift.check(current)
        >>> report.drifted, report.drifted_features
        (True, ('mem',))
        >>> round(report.features[1].normalised_wasserstein, 1)
        0.8
        >>> drift.check(rng.normal(size=(1_000, 2))).drifted
        False
    """

    def __init__(
        self,
        names: Sequence[str],
        reference: npt.ArrayLike,
        *,
        p_value: float = 0.01,
        min_distance: float = 0.1,
        max_samples: int = 5_000,
        min_samples: int = 30,
        seed: int = 0,
    ) -> None:
        if not 0.0 < p_value < 1.0:
            raise ValueError(f"p_value must be in (0, 1), got {p_value}")
        if min_distance < 0:
            raise ValueError(f"min_distance must be >= 0, got {min_distance}")
        if min_samples < 2 or max_samples < min_samples:
            raise ValueError("need 2 <= min_samples <= max_samples")
        self.names = tuple(names)
        self.p_value = p_value
        self.min_distance = min_distance
        self.max_samples = max_samples
        self.min_samples = min_samples
        self.seed = seed
        matrix = _matrix(self.names, reference)
        rng = np.random.default_rng(seed)
        self._reference: list[FloatArray] = []
        self._scales: list[float] = []
        for j in range(len(self.names)):
            values = matrix[:, j][~np.isnan(matrix[:, j])]
            self._scales.append(_scale(values))
            self._reference.append(np.sort(self._subsample(values, rng)))

    def check(self, X: npt.ArrayLike, names: Sequence[str] | None = None) -> DriftReport:
        """Test the rows of ``X`` (columns :attr:`names`, or ``names``: a reference feature
        they lack is untested) against the reference."""
        given = tuple(names) if names is not None else self.names
        matrix = _matrix(given, X)
        index = {name: j for j, name in enumerate(given)}
        rng = np.random.default_rng([self.seed, 1])
        results = []
        for name, reference, scale in zip(self.names, self._reference, self._scales, strict=True):
            j = index.get(name)
            values = np.empty(0) if j is None else matrix[:, j][~np.isnan(matrix[:, j])]
            current = self._subsample(values, rng)
            results.append(self._test(name, reference, current, scale))
        return DriftReport(tuple(results), any(r.drifted for r in results))

    def _test(
        self, name: str, reference: FloatArray, current: FloatArray, scale: float
    ) -> FeatureDriftResult:
        if min(reference.size, current.size) < self.min_samples:
            return FeatureDriftResult(
                name, reference.size, current.size, None, None, None, None, False
            )
        statistic, p = _ks(reference, current)
        distance = _wasserstein(reference, current)
        normalised = distance / scale
        drifted = p < self.p_value and normalised >= self.min_distance
        return FeatureDriftResult(
            name, reference.size, current.size, statistic, p, distance, normalised, drifted
        )

    def _subsample(self, values: FloatArray, rng: np.random.Generator) -> FloatArray:
        if values.size <= self.max_samples:
            return values
        return values[np.sort(rng.choice(values.size, self.max_samples, replace=False))]


def _matrix(names: tuple[str, ...], X: npt.ArrayLike) -> FloatArray:
    matrix = np.array(X, dtype=np.float64, ndmin=2)
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise ValueError(f"X must have shape [n, {len(names)}], got {matrix.shape}")
    return matrix


def _scale(values: FloatArray) -> float:
    """The reference's IQR, else its standard deviation, else 1 (a constant feature)."""
    if values.size == 0:
        return 1.0
    q1, q3 = np.quantile(values, [0.25, 0.75])
    for scale in (float(q3 - q1), float(values.std())):
        if scale > 0 and math.isfinite(scale):
            return scale
    return 1.0
