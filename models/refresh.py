"""The refresh schedule shared by windowed statistics (scaler baselines, thresholds).

A statistic is recomputed after every observation while young, then after every 1/16th
growth, then every ``every`` observations. Because refreshes happen at known counts, a batch
can be cut into segments between them and processed exactly as one observation at a time.
"""

from __future__ import annotations

__all__ = ["refresh_due", "steps_to_refresh"]


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
    if count >= 16 * every:
        # Grown up: the bound is ``every`` from now on, so the answer needs no search.
        return max(1, every - since)
    # Due-ness is monotone in the steps taken (the bound grows at most one per step), and is
    # certain after ``every - since`` steps: bisect for the first due step in between.
    low, high = 1, max(1, every - since)
    while low < high:
        middle = (low + high) // 2
        if refresh_due(since + middle, count + middle, every):
            high = middle
        else:
            low = middle + 1
    return low
