"""A batch's run sums added row after row, so a step's sums do not depend on where batches cut it.

``np.add.reduceat`` sums a run's rows in an order of its own (not left to right), and a step
that spans two batches is summed as (its rows in the first) + (its rows in the second): in
the last bits, both differ from the same rows in one batch. Here every run's sum is a left
fold, ``((open + r1) + r2) + ...``, starting from its step's running sums when the run
continues the step a previous batch left open: the same floats however the rows were cut.
It costs a numpy call per row of the longest run (a step's events of one service), where
``reduceat`` costs one in all; ``VIGIL_INCIDENT_STATE=partition`` uses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["folded_sums"]

FloatArray = npt.NDArray[np.float64]


def folded_sums(
    rows: FloatArray,
    starts: npt.NDArray[np.intp],
    lengths: npt.NDArray[np.intp],
    opened: Mapping[int, tuple[FloatArray, FloatArray]],
) -> tuple[Sequence[FloatArray], Sequence[FloatArray]]:
    """Each run's sums of values and counts of present (not NaN) values, added left to right.

    Args:
        rows: The rows of one feature set (one row per event, NaN: missing).
        starts: Each run's first row.
        lengths: Each run's number of rows.
        opened: Run index -> the sums and counts of the open step it continues (they come
            first in its fold).

    Examples:
        >>> rows = np.array([[0.1], [0.2], [0.3], [np.nan]])
        >>> starts, lengths = np.array([0, 3]), np.array([3, 1])
        >>> sums, counts = folded_sums(rows, starts, lengths, {})
        >>> bool(sums[0][0] == (0.1 + 0.2) + 0.3), counts[1].tolist()
        (True, [0.0])
        >>> first, _ = folded_sums(rows[:1], np.array([0]), np.array([1]), {})
        >>> rest, _ = folded_sums(rows[1:3], np.array([0]), np.array([2]), {0: (first[0], [1.0])})
        >>> bool(rest[0][0] == sums[0][0])  # cut after the first row: the same float
        True
    """
    present = ~np.isnan(rows)
    values = rows if present.all() else np.where(present, rows, 0.0)
    sums = values[starts]  # a copy: fancy indexing
    counts = present[starts].astype(np.float64)
    for run, (open_sum, open_count) in opened.items():
        sums[run] = open_sum + sums[run]
        counts[run] = open_count + counts[run]
    for k in range(1, int(lengths.max(initial=1))):
        longer = np.flatnonzero(lengths > k)
        at = starts[longer] + k
        sums[longer] += values[at]
        counts[longer] += present[at]
    return list(sums), list(counts)
