"""Tail probabilities of a count: how unusual a template's count (or a window's line count) is.

The predictive count of :class:`~stream.core.logs.rates.TemplateRates` is negative binomial
with a learned mean and variance (exactly the Gamma-Poisson predictive when there is no
excess over the mean); a p-value is one tail of it, the regularised incomplete beta function
(Poisson's incomplete gamma when the variance is at most the mean).
"""

from __future__ import annotations

from scipy.special import betainc, gammainc, gammaincc

__all__ = ["MIN_P", "lower_tail_probability", "tail_probability"]

MIN_P = 1e-300
"""p-values are floored here, so a surprise (-log10 p) stays finite."""


def _size(mean: float, variance: float) -> float | None:
    """The negative binomial's size for this mean and variance; None for Poisson (a variance
    at most the mean: the negative binomial's limit)."""
    if variance <= mean * (1.0 + 1e-9):
        return None
    return mean * mean / (variance - mean)


def tail_probability(count: int, mean: float, variance: float) -> float:
    """``P(C >= count)`` for a negative binomial count ``C`` of this mean and variance.

    A variance at most the mean is taken as Poisson's (the limit of the negative binomial).

    Examples:
        >>> round(tail_probability(5, 0.5, 0.5), 6)  # Poisson(0.5): P(C >= 5)
        0.000172
        >>> round(tail_probability(5, 0.5, 2.0), 6)  # over-dispersed: a clump of 5 is likelier
        0.02621
        >>> tail_probability(0, 3.0, 3.0)
        1.0
    """
    if count <= 0:
        return 1.0
    size = _size(mean, variance)
    if size is None:
        return float(gammainc(count, mean))  # Poisson: P(C >= k) = P(k, mean)
    return float(betainc(count, size, mean / (mean + size)))


def lower_tail_probability(count: int, mean: float, variance: float) -> float:
    """``P(C <= count)`` for a negative binomial count ``C`` of this mean and variance.

    Examples:
        >>> f"{lower_tail_probability(0, 30.0, 30.0):.3g}"  # Poisson(30) writing nothing: e^-30
        '9.36e-14'
        >>> round(lower_tail_probability(0, 30.0, 1000.0), 4)  # clumpy: silence is likelier
        0.0386
        >>> lower_tail_probability(3, 0.0, 0.0)
        1.0
    """
    if mean <= 0.0:
        return 1.0
    size = _size(mean, variance)
    if size is None:
        return float(gammaincc(count + 1, mean))  # Poisson: P(C <= k) = Q(k + 1, mean)
    return float(betainc(size, count + 1, size / (mean + size)))
