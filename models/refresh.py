"""The refresh schedule shared by windowed statistics (scaler baselines, thresholds).

A statistic is recomputed after every observation while young, then after every 1/16th
growth, then every ``every`` observations. Because refreshes happen at known counts, a batch
can be cut into segments between them and processed exactly as one observation at a time.
"""

from __future__ import annotations

__all__ = [
    "aligned_refresh_due",
    "aligned_steps_to_refresh",
    "refresh_due",
    "steps_to_refresh",
]


def refresh_due(since: int, count: int, every: int) -> bool:
    """Whether a refresh is due after ``count`` observations, ``since`` of them since the last.

    Examples:
        >>> refresh_due(1, 1, 250), refresh_due(1, 100, 250), refresh_due(250, 10_000, 250)
        (True, False, True)
    """
    return since >= min(every, max(1, count // 16))


def steps_to_refresh(since: int, count: int, every: int) -> int:
    """How many more observations until the next refresh is due (at least 1).

    Examples:
        >>> steps_to_refresh(0, 10_000, 250), steps_to_refresh(0, 0, 250)
        (250, 1)
    """
    # Due after s steps when ``since + s >= every`` or ``since + s >= (count + s) // 16`` (the
    # ``max(1, ...)`` always holds for s >= 1). Both hold from some s on; the second one,
    # ``floor((count + s) / 16) <= since + s``, is ``15 s > count - 16 since - 16``.
    by_every = every - since
    by_growth = (count - 16 * since - 16) // 15 + 1
    return max(1, min(by_every, by_growth))


def _next_point(count: int, every: int, young: int) -> int:
    """The first aligned refresh point above ``count``: the powers of two below ``young``,
    the multiples of ``young`` below ``16 * every``, then the multiples of ``every``."""
    if count < young:
        return min(young, 1 << count.bit_length())
    if count < 16 * every - young:
        return (count // young + 1) * young
    return max(16 * every, (count // every + 1) * every)


def aligned_refresh_due(since: int, count: int, every: int, young: int | None = None) -> bool:
    """Whether an aligned refresh point was passed by the last ``since`` of ``count``
    observations. Aligned points are the powers of two below ``young`` (default ``every``: a
    young statistic improves fast), its multiples until ``16 * every`` observations, then the
    multiples of ``every``: statistics that count the same rows and whose periods divide each
    other refresh on the same rows, and a batch is cut at a handful of points, not at every
    1/16th growth of each statistic's own count.

    Examples:
        >>> aligned_refresh_due(250, 10_000, 250), aligned_refresh_due(40, 10_050, 250)
        (True, False)
        >>> [aligned_refresh_due(1, count, 250) for count in (1, 3, 4)]
        [True, False, True]
    """
    return since > 0 and _next_point(count - since, every, young or every) <= count


def aligned_steps_to_refresh(since: int, count: int, every: int, young: int | None = None) -> int:
    """How many more observations until :func:`aligned_refresh_due` (at least 1).

    Examples:
        >>> aligned_steps_to_refresh(0, 10_000, 250), aligned_steps_to_refresh(30, 10_030, 250)
        (250, 220)
        >>> aligned_steps_to_refresh(0, 5, 250), aligned_steps_to_refresh(0, 200, 250)
        (3, 50)
    """
    return _next_point(count, every, young or every) - count
