"""Row scores from robust z-scores: Half-Space Trees, a robust-z detector, or both.

All detectors map a row of robust z-scores (of seasonal residuals, when seasonality is on) to a
score in [0, 1), higher = more anomalous, scored before learned:

* ``hst``: river's Half-Space Trees over the z-scores squashed into the unit interval;
* ``robust_z``: ``m / (1 + m)`` with ``m`` the mean absolute z-score of the row, a monotone
  map of the statistic that measured best on the ASD servers (see docs/design.md);
* ``ensemble``: the mean of the two.

``robust_z`` is stateless (its memory is the scaler's window), so it needs no trees, no mass
windows and no HST warm-up.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from models.hst import Engine, HSTEngine, make_hst
from models.hst_numpy import BatchHST
from models.trees import Steps, run_steps

__all__ = ["Detector", "RowScorer", "deviation_score"]

FloatArray = npt.NDArray[np.float64]
Detector = Literal["hst", "robust_z", "ensemble"]


def deviation_score(z: FloatArray) -> FloatArray:
    """``m / (1 + m)`` per row, ``m`` the mean absolute z-score: 0 at the median, towards 1.

    Examples:
        >>> deviation_score(np.array([[0.0, 0.0], [1.0, -1.0], [9.0, 9.0]])).tolist()
        [0.0, 0.5, 0.9]
    """
    # np.mean's own arithmetic (a sum, then a true division by the count) without its wrapper.
    m = np.add.reduce(np.abs(z), axis=1) / z.shape[1]
    out: FloatArray = m / (1.0 + m)
    return out


class RowScorer:
    """Scores rows of robust z-scores with the configured detector.

    Args:
        detector: ``hst``, ``robust_z`` or ``ensemble``.
        engine: The HST engine (``numpy`` or ``river``), unused by ``robust_z``.
        n_trees: Half-Space Trees: number of trees.
        height: Half-Space Trees: tree height.
        window_size: Half-Space Trees: observations per mass window.
        seed: Half-Space Trees: seed of the random splits.
        squash: The z-score that maps to about 0.88 in the trees' unit interval.

    Examples:
        >>> scorer = RowScorer("robust_z", "numpy", n_trees=2, height=2, window_size=10, seed=0)
        >>> scorer.score(np.array([[0.5, -1.5]]), learn=True).tolist(), scorer.nbytes
        ([0.5], 0)
    """

    def __init__(
        self,
        detector: Detector,
        engine: Engine,
        *,
        n_trees: int,
        height: int,
        window_size: int,
        seed: int,
        squash: float = 16.0,
    ) -> None:
        self.detector = detector
        self.squash = squash
        self.hst: HSTEngine | None = None
        if detector != "robust_z":
            self.hst = make_hst(
                engine, n_trees=n_trees, height=height, window_size=window_size, seed=seed
            )

    @property
    def nbytes(self) -> int:
        """Bytes of the trees' mass arrays (0 for ``robust_z``)."""
        return self.hst.nbytes if self.hst is not None else 0

    def score(self, z: FloatArray, *, learn: bool) -> FloatArray:
        """Score each row (then learn it, for the trees, if ``learn``)."""
        return run_steps(self.score_steps(z, learn=learn))

    def score_steps(self, z: FloatArray, *, learn: bool) -> Steps[FloatArray]:
        """:meth:`score` as steps: the numpy trees ask for their paths (see ``models.trees``)."""
        if self.hst is None:
            return deviation_score(z)
        scaled = 0.5 + 0.5 * np.tanh(z / self.squash)
        if isinstance(self.hst, BatchHST):
            steps = self.hst.score_learn_steps(scaled) if learn else self.hst.score_steps(scaled)
            trees = yield from steps
        else:
            trees = self.hst.score_learn_batch(scaled) if learn else self.hst.score_batch(scaled)
        if self.detector == "hst":
            return trees
        out: FloatArray = 0.5 * (trees + deviation_score(z))
        return out
