"""Half-Space Trees engines over features already scaled into the unit interval.

Two engines compute the same algorithm: river's ``HalfSpaceTrees`` one event at a time (the
reference, ``engine="river"``), and :class:`~models.anomaly.hst_numpy.BatchHST` over numpy
micro-batches (``engine="numpy"``, the default), which gives identical scores for the same
trees.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from river import anomaly

from models.anomaly.hst_numpy import BatchHST

__all__ = ["Engine", "HSTEngine", "RiverHST", "make_hst"]

FloatArray = npt.NDArray[np.float64]
Engine = Literal["numpy", "river"]


class HSTEngine(Protocol):
    """Scores rows of features in [0, 1]; higher is more anomalous; score before learning."""

    def score_learn_batch(self, X: FloatArray) -> FloatArray: ...

    def score_batch(self, X: FloatArray) -> FloatArray: ...

    def learn_batch(self, X: FloatArray) -> None: ...

    def rows_to_window_end(self) -> int: ...

    @property
    def first_window(self) -> bool: ...

    @property
    def nbytes(self) -> int: ...


class RiverHST:
    """river's ``HalfSpaceTrees``, the reference engine, behind the batch interface.

    Columns are named by their zero-padded index, so river sorts them in column order and
    builds the same trees as :class:`BatchHST` with the same seed.

    Examples:
        >>> X = np.random.default_rng(0).random((300, 2))
        >>> river_hst = RiverHST(n_trees=5, height=3, window_size=50, seed=1)
        >>> numpy_hst = BatchHST(n_trees=5, height=3, window_size=50, seed=1)
        >>> bool((river_hst.score_learn_batch(X) == numpy_hst.score_learn_batch(X)).all())
        True
    """

    def __init__(
        self, n_trees: int = 10, height: int = 8, window_size: int = 250, seed: int = 0
    ) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        # river's estimators are untyped: this attribute is the one boundary to them.
        self._model: Any = anomaly.HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )

    @staticmethod
    def _dicts(X: FloatArray) -> list[dict[str, float]]:
        width = len(str(max(0, X.shape[1] - 1)))
        names = [str(j).zfill(width) for j in range(X.shape[1])]
        return [dict(zip(names, row, strict=True)) for row in X.tolist()]

    def score_learn_batch(self, X: FloatArray) -> FloatArray:
        """Score then learn each row, one at a time."""
        scores = np.empty(X.shape[0])
        for i, x in enumerate(self._dicts(X)):
            scores[i] = self._model.score_one(x)
            self._model.learn_one(x)
        return scores

    def score_batch(self, X: FloatArray) -> FloatArray:
        """Score each row without learning."""
        return np.array([self._model.score_one(x) for x in self._dicts(X)], dtype=np.float64)

    def learn_batch(self, X: FloatArray) -> None:
        """Learn each row, in order."""
        for x in self._dicts(X):
            self._model.learn_one(x)

    def rows_to_window_end(self) -> int:
        """Rows that can be learned before the reference profile next changes (at least 1)."""
        return int(self.window_size - self._model.counter)

    @property
    def first_window(self) -> bool:
        """True until the first window is complete (scores are 0 meanwhile)."""
        return bool(self._model._first_window)

    @property
    def nbytes(self) -> int:
        """Not measured for river's object trees (see benchmarks/hst_engine.py)."""
        return 0


def make_hst(
    engine: Engine, *, n_trees: int, height: int, window_size: int, seed: int
) -> HSTEngine:
    """An HST engine by name."""
    if engine == "river":
        return RiverHST(n_trees=n_trees, height=height, window_size=window_size, seed=seed)
    return BatchHST(n_trees=n_trees, height=height, window_size=window_size, seed=seed)
