"""A service's cadence: the median gap between its recent event times.

Budgets are per day and a service is judged per sample, so its alpha scales with its own
cadence, re-estimated as it goes (a scrape interval can change).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["CADENCE_ROWS", "DEFAULT_CADENCE_S", "median_gap", "remember"]

FloatArray = npt.NDArray[np.float64]

CADENCE_ROWS = 65
"""Event times kept to estimate a service's cadence (64 gaps)."""
DEFAULT_CADENCE_S = 60.0
"""A service's cadence until it has two distinct event times."""


def remember(recent: FloatArray, ts: FloatArray) -> None:
    """Shift event times ``ts`` into ``recent`` (oldest first, NaN until filled), in place.

    Examples:
        >>> recent = np.full(3, np.nan)
        >>> remember(recent, np.array([1.0, 2.0])); recent.tolist()
        [nan, 1.0, 2.0]
    """
    if ts.size == 0:
        return
    k = min(ts.size, recent.size)
    recent[:-k] = recent[k:].copy()
    recent[-k:] = ts[-k:]


def median_gap(recent: FloatArray) -> float | None:
    """The median of the positive gaps between the times in ``recent`` (NaN skipped), or
    None without two distinct times.

    Examples:
        >>> median_gap(np.array([np.nan, 0.0, 60.0, 60.0, 180.0])), median_gap(np.array([5.0]))
        (90.0, None)
    """
    times = recent[~np.isnan(recent)]
    gaps = times[1:] - times[:-1]  # np.diff's arithmetic, without its wrapper
    gaps = gaps[gaps > 0]
    if not gaps.size:
        return None
    half = gaps.size // 2  # the median, without np.median's wrapper
    ordered = np.partition(gaps, [half - 1, half] if gaps.size % 2 == 0 else half)
    low = ordered[half - 1] if gaps.size % 2 == 0 else ordered[half]
    return float(0.5 * (low + ordered[half]))
