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
    # Due after s steps when ``since + s >= every`` or ``since + s >= (count + s) // 16`` (the
    # ``max(1, ...)`` always holds for s >= 1). Both hold from some s on; the second one,
    # ``floor((count + s) / 16) <= since + s``, is ``15 s > count - 16 since - 16``.
    by_every = every - since
    by_growth = (count - 16 * since - 16) // 15 + 1
    return max(1, min(by_every, by_growth))
