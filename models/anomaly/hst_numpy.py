"""Half-Space Trees over numpy micro-batches: river's algorithm, score for score.

river's ``HalfSpaceTrees`` walks Python node objects one event at a time. This engine keeps the
same trees (built by river's own ``make_padded_tree`` from the same random sequence) as flat
arrays in heap layout and processes a batch of events at once: the loops run over tree levels
and mass windows only, never over events or trees.

Every score equals river's ``score_one(x)`` called right before ``learn_one(x)`` for each row in
order, exactly (``==``, not approximately), window swaps in the middle of a batch included:

* the path of an event through a tree depends only on the event (complete vectors have no
  missing features, the only case where river reads masses to route), so all paths of a batch
  are computed up front;
* between two window swaps the reference masses ``r_mass`` are constant, so all the events of
  such a segment are scored at once, then counted into ``l_mass`` at once;
* river sums integer-valued products ``r_mass * 2**depth`` in Python floats; every partial sum is
  an integer below ``max_score`` and ``max_score < 2**53`` (checked at construction), so each
  float addition is exact and equals the int64 sum here, converted to float once. The final
  ``1 - total / max_score`` is then the same pair of IEEE operations in both engines.

Missing features are not supported (river routes them along the heavier child): every row must
be a complete vector, and a NaN raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from models.anomaly.hst_state import hst_state, restore_hst
from models.anomaly.trees import (
    MAX_PATH_ELEMENTS,
    PathRequest,
    Steps,
    TreeStructure,
    node_count,
    path_masses,
    path_totals,
    shared_structure,
    walk,
)

# TreeStructure and shared_structure moved to models.anomaly.trees; still importable from here (and
# snapshots that name them here still load).
__all__ = ["BatchHST", "TreeStructure", "shared_structure"]

Int64Array = npt.NDArray[np.int64]
IntpArray = npt.NDArray[np.intp]
Float64Array = npt.NDArray[np.float64]

_SIZE_LIMIT_FRACTION = 0.1  # river's HalfSpaceTrees.size_limit: 0.1 * window_size
_EXACT_SUM_LIMIT = 2**53  # integers up to here are exact in float64
_TOTALS_ROWS = 32  # segments this small find the leaf totals (trees.path_totals)


class BatchHST:
    """river's ``HalfSpaceTrees`` on numpy micro-batches, with identical scores.

    Features are in ``[0, 1]`` (river's default limits); array columns are in the structure's
    feature order, which is the sorted order of the feature names in the dict API. The trees are
    built at the first learn (like river), from the number of columns, through
    ``shared_structure``, unless a ``structure`` is given.

    Args:
        n_trees: Number of trees.
        height: Height of each tree (``height + 1`` levels).
        window_size: Observations per mass window.
        seed: Seed for the random splits (river's ``seed``).
        structure: Trees to use instead of ``shared_structure(n_features, n_trees, height,
            seed)``; must have ``n_trees`` trees of height ``height``.

    Attributes:
        l_mass: Counts of the current (latest) window, shape ``(n_trees, n_nodes)``.
        r_mass: Counts of the last complete window (the reference profile), same shape.
        counter: Observations learnt in the current window.
        first_window: True until the first window is complete; scores are 0 meanwhile.
        feature_names: Sorted feature names of the dict API, set at its first learn.

    Raises:
        ValueError: If a parameter is out of range.

    Examples:
        >>> import numpy as np
        >>> from river import anomaly
        >>> X = np.random.default_rng(0).random((600, 3))
        >>> hst = BatchHST(n_trees=5, height=4, window_size=100, seed=1)
        >>> scores = np.concatenate(
        ...     [hst.score_learn_batch(X[:250]), hst.score_learn_batch(X[250:])]
        ... )
        >>> reference = anomaly.HalfSpaceTrees(n_trees=5, height=4, window_size=100, seed=1)
        >>> expected = []
        >>> for row in X.tolist():
        ...     x = {"a": row[0], "b": row[1], "c": row[2]}
        ...     expected.append(reference.score_one(x))
        ...     reference.learn_one(x)
        >>> bool((scores == np.array(expected)).all())
        True
        >>> float(scores[:100].max()), round(float(scores[100:].mean()), 3)
        (0.0, 0.779)

        The dict API keeps river's interface (columns are the sorted feature names):

        >>> typical = hst.score_one({"a": 0.5, "b": 0.5, "c": 0.5})
        >>> odd = hst.score_one({"a": 0.99, "b": 0.0, "c": 0.99})
        >>> bool(typical < odd), odd == reference.score_one({"a": 0.99, "b": 0.0, "c": 0.99})
        (True, True)
    """

    def __init__(
        self,
        n_trees: int = 10,
        height: int = 8,
        window_size: int = 250,
        seed: int = 0,
        structure: TreeStructure | None = None,
    ) -> None:
        if n_trees < 1 or height < 0 or window_size < 1:
            raise ValueError("need n_trees >= 1, height >= 0 and window_size >= 1")
        if n_trees * window_size * node_count(height) >= _EXACT_SUM_LIMIT:
            raise ValueError("n_trees * window_size * (2**(height + 1) - 1) must be < 2**53")
        if structure is not None and (structure.n_trees, structure.height) != (n_trees, height):
            raise ValueError(
                f"structure has {structure.n_trees} trees of height {structure.height}, "
                f"expected {n_trees} of height {height}"
            )
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        self.structure = structure
        self._shared = structure is None  # the structure comes from shared_structure
        self.l_mass: Int64Array = np.zeros((n_trees, node_count(height)), dtype=np.int64)
        self.r_mass: Int64Array = np.zeros((n_trees, node_count(height)), dtype=np.int64)
        self.counter = 0
        self.first_window = True
        self.feature_names: tuple[str, ...] | None = None
        self._derive()

    def _derive(self) -> None:
        """Constants derived from the parameters (not part of the state)."""
        levels = self.height + 1
        # The reference profile's leaf totals (trees.path_totals), until r_mass changes.
        self._totals: Int64Array | None = None
        # Masses are integers: m >= limit exactly when m >= ceil(limit), an integer comparison
        # (comparing int64 masses with a float converts every one of them).
        self._size_limit = math.ceil(_SIZE_LIMIT_FRACTION * self.window_size)
        self._max_score = float(self.n_trees * self.window_size * node_count(self.height))
        self._chunk_rows = max(1, MAX_PATH_ELEMENTS // (levels * self.n_trees))

    # ----------------------------------------------------------------------- array API

    def score_learn_batch(self, X: npt.ArrayLike) -> Float64Array:
        """Score then learn each row in order, as river's ``score_one`` then ``learn_one``.

        Args:
            X: Rows of features in ``[0, 1]``, shape ``(n, n_features)``.

        Returns:
            The score of each row before it was learnt, shape ``(n,)``; 0 in the first window.

        Raises:
            ValueError: If ``X`` has the wrong shape or a NaN.
        """
        rows = self._rows(X, build=True)
        scores = np.zeros(len(rows), dtype=np.float64)
        for chunk in range(0, len(rows), self._chunk_rows):
            part = rows[chunk : chunk + self._chunk_rows]
            scores[chunk : chunk + len(part)] = self._score_learn_paths(self._paths(part))
        return scores

    def score_learn_steps(self, X: npt.ArrayLike) -> Steps[Float64Array]:
        """:meth:`score_learn_batch` as steps: the rows' paths are asked for, not walked here.

        Run it with ``models.anomaly.trees.run_steps`` (alone) or ``run_together`` (with other
        models' steps, walking the rows of all of them at once); the scores and the learning are
        those of :meth:`score_learn_batch`.
        """
        rows = self._rows(X, build=True)
        if len(rows) == 0 or len(rows) > self._chunk_rows:
            return self.score_learn_batch(rows)  # nothing to walk, or too much for one walk
        assert self.structure is not None
        paths = yield PathRequest(self.structure, rows)
        return self._score_learn_paths(paths)

    def score_batch(self, X: npt.ArrayLike) -> Float64Array:
        """Score each row against the current reference profile, without learning.

        Args:
            X: Rows of features in ``[0, 1]``, shape ``(n, n_features)``.

        Returns:
            The scores, shape ``(n,)``; 0 in the first window.

        Raises:
            ValueError: If ``X`` has the wrong shape or a NaN.
        """
        rows = self._rows(X, build=False)
        scores = np.zeros(len(rows), dtype=np.float64)
        if self.first_window:
            return scores
        for chunk in range(0, len(rows), self._chunk_rows):
            paths = self._paths(rows[chunk : chunk + self._chunk_rows])
            scores[chunk : chunk + paths.shape[2]] = self._score_paths(paths)
        return scores

    def score_steps(self, X: npt.ArrayLike) -> Steps[Float64Array]:
        """:meth:`score_batch` as steps (see :meth:`score_learn_steps`)."""
        rows = self._rows(X, build=False)
        if self.first_window or len(rows) == 0 or len(rows) > self._chunk_rows:
            return self.score_batch(rows)
        assert self.structure is not None
        paths = yield PathRequest(self.structure, rows)
        return self._score_paths(paths)

    def rows_to_window_end(self) -> int:
        """Rows that can be learned before the reference profile next changes (at least 1)."""
        return self.window_size - self.counter

    def score_keep_steps(
        self, X: npt.ArrayLike, *, checked: bool = False
    ) -> Steps[tuple[Float64Array, IntpArray]]:
        """Score rows without learning, and keep their paths for :meth:`learn_paths`.

        The rows must not cross a window end once learned (at most
        :meth:`rows_to_window_end` of them): their scores are all taken against the current
        reference profile, as one-at-a-time processing would. ``checked``: the caller
        vouches that ``X`` is a float64 matrix without NaN (not looked for again).
        """
        rows = self._rows(X, build=True, checked=checked)
        assert self.structure is not None
        if len(rows) == 0 or len(rows) > self._chunk_rows:
            parts = [
                self._paths(rows[a : a + self._chunk_rows])
                for a in range(0, len(rows), self._chunk_rows)
            ]
            paths = np.concatenate(parts, axis=2) if parts else self._paths(rows)
        else:
            paths = yield PathRequest(self.structure, rows)
        if self.first_window:
            return np.zeros(len(rows), dtype=np.float64), paths
        return self._score_paths(paths), paths

    def learn_paths(self, paths: IntpArray) -> None:
        """Learn rows by their paths (from :meth:`score_keep_steps`), in order."""
        start = 0
        n = paths.shape[2]
        while start < n:
            stop = min(n, start + self.window_size - self.counter)
            self._learn_paths(paths[:, :, start:stop])
            self._advance(stop - start)
            start = stop

    def learn_batch(self, X: npt.ArrayLike) -> None:
        """Learn each row in order, as river's ``learn_one``.

        Args:
            X: Rows of features in ``[0, 1]``, shape ``(n, n_features)``.

        Raises:
            ValueError: If ``X`` has the wrong shape or a NaN.
        """
        rows = self._rows(X, build=True)
        for chunk in range(0, len(rows), self._chunk_rows):
            self.learn_paths(self._paths(rows[chunk : chunk + self._chunk_rows]))

    # ------------------------------------------------------------------------ dict API

    def score_one(self, x: Mapping[str, float]) -> float:
        """The anomaly score of ``x`` in [0, 1]; 0 until the first window is complete.

        Args:
            x: Feature values by name; names beyond the learnt ones are ignored (as in river).

        Returns:
            The score river's ``HalfSpaceTrees.score_one`` returns.

        Raises:
            ValueError: If a learnt feature is missing or NaN.
        """
        if self.first_window:
            return 0.0
        names = self.feature_names if self.feature_names is not None else tuple(sorted(x))
        return float(self.score_batch(self._dict_row(x, names))[0])

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Count ``x`` in the current window.

        The first call fixes the feature names (sorted), as river builds its trees from them.

        Args:
            x: Feature values by name; names beyond the learnt ones are ignored (as in river).

        Raises:
            ValueError: If a learnt feature is missing or NaN.
        """
        names = self.feature_names if self.feature_names is not None else tuple(sorted(x))
        row = self._dict_row(x, names)
        self.learn_batch(row)
        self.feature_names = names

    # -------------------------------------------------------------------- model plumbing

    def clone(self) -> BatchHST:
        """A fresh, unlearnt model with the same parameters (and the same given structure)."""
        return BatchHST(
            n_trees=self.n_trees,
            height=self.height,
            window_size=self.window_size,
            seed=self.seed,
            structure=None if self._shared else self.structure,
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by this model's own state: the two mass arrays."""
        return int(self.l_mass.nbytes + self.r_mass.nbytes)

    def __getstate__(self) -> dict[str, Any]:
        return hst_state(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        restore_hst(self, state)
        self._derive()

    # ---------------------------------------------------------------------- internals

    def _dict_row(self, x: Mapping[str, float], names: tuple[str, ...]) -> Float64Array:
        try:
            values = [x[name] for name in names]
        except KeyError as exc:
            raise ValueError(f"missing feature {exc.args[0]!r}") from None
        return np.array([values], dtype=np.float64)

    def _rows(self, X: npt.ArrayLike, *, build: bool, checked: bool = False) -> Float64Array:
        rows = np.ascontiguousarray(X, dtype=np.float64)
        if rows.ndim != 2:
            raise ValueError(f"X must be 2-D (rows, features), got shape {rows.shape}")
        if self.structure is None and build and len(rows):
            if rows.shape[1] < 1:
                raise ValueError("X must have at least one feature column")
            self.structure = shared_structure(rows.shape[1], self.n_trees, self.height, self.seed)
        if self.structure is not None and rows.shape[1] != self.structure.n_features:
            raise ValueError(
                f"X has {rows.shape[1]} feature columns, the trees have {self.structure.n_features}"
            )
        if not checked and np.isnan(rows).any():
            raise ValueError("X has a NaN: missing features are not supported")
        return rows

    def _paths(self, rows: Float64Array) -> IntpArray:
        """Flat node index per level, tree and row: shape ``(height + 1, n_trees, n_rows)``."""
        assert self.structure is not None
        return walk(self.structure, rows)

    def _score_learn_paths(self, paths: IntpArray) -> Float64Array:
        """Score then learn the rows of ``paths`` in order, window swaps included."""
        n = paths.shape[2]
        scores = np.zeros(n, dtype=np.float64)
        start = 0
        while start < n:
            stop = min(n, start + self.window_size - self.counter)
            segment = paths[:, :, start:stop]
            if not self.first_window:
                scores[start:stop] = self._score_paths(segment)
            self._learn_paths(segment)
            self._advance(stop - start)
            start = stop
        return scores

    def _score_paths(self, paths: IntpArray) -> Float64Array:
        # Small segments (many services, a few rows each) look their rows' leaves up in the
        # profile's leaf totals, found at the first of them (they cost about as much as
        # scoring 150 rows level by level); others are scored level by level.
        rows = paths.shape[2]
        if self._totals is None and rows < _TOTALS_ROWS:
            self._totals = path_totals(self.r_mass, self.height, self._size_limit)
        if self._totals is None:
            total = path_masses(self.r_mass, paths, self._size_limit)
        else:
            total = np.add.reduce(self._totals.take(paths[-1]), axis=0)
        scores: Float64Array = 1.0 - total.astype(np.float64) / self._max_score
        return scores

    def _learn_paths(self, paths: IntpArray) -> None:
        np.add.at(self.l_mass.reshape(-1), paths.reshape(-1), 1)

    def _advance(self, n: int) -> None:
        self.counter += n
        if self.counter == self.window_size:
            # r_mass <- l_mass, l_mass <- 0: hand the array over rather than copying it; a
            # fresh zeroed array costs less than zeroing one in place (the OS zeroes pages).
            self.r_mass = self.l_mass
            self.l_mass = np.zeros_like(self.r_mass)
            self._totals = None
            self.first_window = False
            self.counter = 0
