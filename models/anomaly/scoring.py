"""Row scores from robust z-scores: the channels a detector reads a row through.

Every channel maps a row of robust z-scores (of seasonal residuals, when seasonality is on) to
a score, higher = more anomalous, scored before learned, on an unbounded scale whose tail can
be extrapolated:

* ``hst``: ``-log(1 - s)`` of river's Half-Space Trees' score ``s`` over the z-scores squashed
  into the unit interval (what is unusual in the combination: a correlation break);
* ``mean``: the mean absolute z-score of the row (many metrics off a little: what measured
  best on the ASD servers, see docs/design.md);
* ``max``: the largest absolute z-score (one metric far off: a spike in one of twenty
  metrics moves the mean by a twentieth).

Each channel is calibrated on its own (``models.anomaly.calibration``) and the row's tail
probability is the smallest one times the number of channels (Bonferroni), so a strong signal
in one channel is not averaged away by another's noise. Detectors: ``hst`` (the trees alone),
``robust_z`` (mean and max: no trees, no mass windows, no HST warm-up) and ``ensemble``
(all three).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from models.anomaly.hst import Engine, HSTEngine, make_hst
from models.anomaly.hst_numpy import BatchHST
from models.anomaly.trees import Steps

__all__ = ["Detector", "PendingRows", "RowScorer", "deviation_score", "peak_score"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntpArray = npt.NDArray[np.intp]
Detector = Literal["hst", "robust_z", "ensemble"]
_TOP = 1.0 - 1e-12  # an HST score of 1 (an empty region) maps to about 27.6


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


def peak_score(z: FloatArray) -> FloatArray:
    """``M / (1 + M)`` per row, ``M`` the largest absolute z-score.

    Examples:
        >>> peak_score(np.array([[0.0, 0.0], [1.0, -9.0]])).tolist()
        [0.0, 0.9]
    """
    m = np.abs(z).max(axis=1) if z.shape[1] else np.zeros(z.shape[0])
    out: FloatArray = m / (1.0 + m)
    return out


@dataclass(frozen=True, slots=True)
class PendingRows:
    """Rows scored but not learned yet: their paths (numpy trees) or scaled rows (river)."""

    paths: IntpArray | None = None
    scaled: FloatArray | None = None


class RowScorer:
    """Scores rows of robust z-scores through the configured detector's channels.

    Args:
        detector: ``hst``, ``robust_z`` or ``ensemble``.
        engine: The HST engine (``numpy`` or ``river``), unused by ``robust_z``.
        n_trees: Half-Space Trees: number of trees.
        height: Half-Space Trees: tree height.
        window_size: Half-Space Trees: observations per mass window.
        seed: Half-Space Trees: seed of the random splits.
        squash: The z-score that maps to about 0.88 in the trees' unit interval.
        n_features: Columns of the rows (with one, the mean and the max are one channel).

    Examples:
        >>> from models.anomaly.trees import run_steps
        >>> scorer = RowScorer("robust_z", "numpy", n_trees=2, height=2, window_size=10, seed=0)
        >>> channels, _ = run_steps(scorer.score_keep_steps(np.array([[0.5, -1.5]])))
        >>> channels.tolist(), scorer.channels, scorer.display_score(channels).tolist()
        ([[1.0, 1.5]], ('mean', 'max'), [0.5])
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
        n_features: int = 2,
    ) -> None:
        self.detector = detector
        self.squash = squash
        self.hst: HSTEngine | None = None
        if detector != "robust_z":
            self.hst = make_hst(
                engine, n_trees=n_trees, height=height, window_size=window_size, seed=seed
            )
        z_channels = ("mean", "max") if n_features > 1 else ("max",)  # one feature: the same
        self.channels: tuple[str, ...] = {
            "hst": ("hst",),
            "robust_z": z_channels,
            "ensemble": ("hst", *z_channels),
        }[detector]

    @property
    def nbytes(self) -> int:
        """Bytes of the trees' mass arrays (0 for ``robust_z``)."""
        return self.hst.nbytes if self.hst is not None else 0

    def rows_to_window_end(self) -> int:
        """Rows that can be learned before the trees' reference profile changes (at least 1)."""
        return self.hst.rows_to_window_end() if self.hst is not None else sys.maxsize

    @property
    def in_first_window(self) -> bool:
        """True while the trees score 0 (their first mass window is not complete)."""
        return self.hst is not None and self.hst.first_window

    def score_keep_steps(
        self, z: FloatArray, extra: FloatArray | None = None
    ) -> Steps[tuple[FloatArray, PendingRows]]:
        """Each row's channel scores (shape ``(n, len(channels))``, one more column with
        ``extra``: it is its last), nothing learned; :meth:`learn` then takes the rows the
        caller keeps.

        At most :meth:`rows_to_window_end` rows, so every score is taken against the same
        reference profile, as one at a time would be. ``z`` holds no NaN.
        """
        n = z.shape[0]
        out = np.empty((n, len(self.channels) + (extra is not None)))
        pending = PendingRows()
        column = 0
        if self.hst is not None:
            scaled = 0.5 + 0.5 * np.tanh(z / self.squash)
            if isinstance(self.hst, BatchHST):
                trees, paths = yield from self.hst.score_keep_steps(scaled, checked=True)
                pending = PendingRows(paths=paths)
            else:
                trees, pending = self.hst.score_batch(scaled), PendingRows(scaled=scaled)
            # -log(1 - s): the trees' score on an unbounded scale, whose tail a generalized
            # Pareto fit can extrapolate (a bounded score's fitted end point would call
            # everything past it impossible). 0 while the trees score 0 (their first window).
            if self.hst.first_window:
                out[:, 0] = 0.0
            else:
                np.negative(np.log1p(-np.minimum(trees, _TOP)), out=out[:, 0])
            column = 1
        if self.detector != "hst":
            a = np.abs(z)
            if "mean" in self.channels:
                np.divide(np.add.reduce(a, axis=1), z.shape[1], out=out[:, column])
                column += 1
            if z.shape[1]:
                np.maximum.reduce(a, axis=1, out=out[:, column])
            else:
                out[:, column] = 0.0
        if extra is not None:
            out[:, -1] = extra
        return out, pending

    def display_score(self, channels: FloatArray) -> FloatArray:
        """The detector's one score in [0, 1) (alerts show it as ``raw_score``): the trees',
        ``m / (1 + m)`` of the mean |z|, or their mean for the ensemble."""
        parts = []
        if self.hst is not None:
            parts.append(-np.expm1(-channels[:, 0]))
        if self.detector != "hst":
            m = channels[:, 1 if self.hst is not None else 0]  # the mean (or the one |z|)
            parts.append(m / (1.0 + m))
        out: FloatArray = parts[0] if len(parts) == 1 else 0.5 * (parts[0] + parts[1])
        return out

    def learn(self, pending: PendingRows, keep: BoolArray | None) -> None:
        """Learn the kept rows (None: every row) of a :meth:`score_keep_steps` call, in
        order."""
        if self.hst is None:
            return
        if isinstance(self.hst, BatchHST):
            assert pending.paths is not None
            self.hst.learn_paths(pending.paths if keep is None else pending.paths[:, :, keep])
        else:
            assert pending.scaled is not None
            self.hst.learn_batch(pending.scaled if keep is None else pending.scaled[keep])
