"""Half-Space Trees over features already scaled into the unit interval."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from river import anomaly

__all__ = ["AnomalyScorer", "RiverHST"]


class AnomalyScorer(Protocol):
    """An online anomaly scorer: higher is more anomalous; score before learning."""

    def score_one(self, x: Mapping[str, float]) -> float: ...

    def learn_one(self, x: Mapping[str, float]) -> None: ...


class RiverHST:
    """river's ``HalfSpaceTrees``, the reference engine, behind a typed interface.

    Args:
        n_trees: Number of trees.
        height: Height of each tree.
        window_size: Observations per mass window (the reference profile swaps every window).
        seed: Seed for the random splits.

    Examples:
        >>> hst = RiverHST(n_trees=5, height=3, window_size=3, seed=42)
        >>> for v in [0.5, 0.45, 0.43, 0.44, 0.445, 0.45]:
        ...     hst.learn_one({"x": v})
        >>> hst.score_one({"x": 0.45}) < hst.score_one({"x": 0.0})
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

    def score_one(self, x: Mapping[str, float]) -> float:
        """The anomaly score of ``x`` in [0, 1]; 0 until the first window is complete."""
        return float(self._model.score_one(x))

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Count ``x`` in the latest mass profile."""
        self._model.learn_one(x)
