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

import functools
import math
import random
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from river.tree.padded import PaddedBranch, make_padded_tree

__all__ = ["BatchHST", "TreeStructure", "shared_structure"]

Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
IntpArray = npt.NDArray[np.intp]
Float64Array = npt.NDArray[np.float64]

_PADDING = 0.15  # river's HalfSpaceTrees: split points avoid the outer 15% of each range
_SIZE_LIMIT_FRACTION = 0.1  # river's HalfSpaceTrees.size_limit: 0.1 * window_size
_EXACT_SUM_LIMIT = 2**53  # integers up to here are exact in float64
_MAX_PATH_ELEMENTS = 1 << 22  # rows x levels x trees per chunk: bounds the paths' memory

# river is untyped: its tree builder is the one boundary to it.
_make_padded_tree: Callable[..., Any] = make_padded_tree


def _n_nodes(height: int) -> int:
    return (1 << (height + 1)) - 1


@dataclass(frozen=True, eq=False)
class TreeStructure:
    """The split features and thresholds of ``n_trees`` full binary trees, in heap layout.

    Node ``k`` of a tree has children ``2k + 1`` (``value < threshold``) and ``2k + 2``
    (otherwise). Leaves have feature ``-1`` and threshold NaN. The arrays are read-only: one
    structure is meant to be shared by many models (see ``shared_structure``).

    Attributes:
        feature: Split feature (column index) per tree and node, shape ``(n_trees, n_nodes)``.
        threshold: Split threshold per tree and node, shape ``(n_trees, n_nodes)``.
        n_trees: Number of trees.
        height: Height of each tree: ``height + 1`` levels, ``2**(height + 1) - 1`` nodes.
        n_features: Number of feature columns the trees split on.
        fingerprint: CRC-32 of the features and thresholds, to check a rebuilt structure.
        flat_feature: ``feature`` flattened tree-major (node ``t * n_nodes + k``), as indices.
        flat_threshold: ``threshold`` flattened the same way.
        flat_left: Flat index of each node's left child (its right child is the next one);
            meaningless for leaves.
    """

    feature: Int32Array
    threshold: Float64Array
    n_trees: int
    height: int
    n_features: int
    fingerprint: int = field(init=False, repr=False)
    flat_feature: IntpArray = field(init=False, repr=False)
    flat_threshold: Float64Array = field(init=False, repr=False)
    flat_left: IntpArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        shape = (self.n_trees, _n_nodes(self.height))
        feature = np.array(self.feature, dtype=np.int32, order="C")
        threshold = np.array(self.threshold, dtype=np.float64, order="C")
        if feature.shape != shape or threshold.shape != shape:
            raise ValueError(
                f"feature and threshold must have shape {shape}, "
                f"got {feature.shape} and {threshold.shape}"
            )
        n_internal = _n_nodes(self.height - 1) if self.height > 0 else 0
        internal = feature[:, :n_internal]
        if (internal < 0).any() or (internal >= self.n_features).any():
            raise ValueError(f"split features must be in [0, {self.n_features})")
        if (feature[:, n_internal:] != -1).any():
            raise ValueError("leaves must have feature -1")
        feature.setflags(write=False)
        threshold.setflags(write=False)
        object.__setattr__(self, "feature", feature)
        object.__setattr__(self, "threshold", threshold)
        crc = zlib.crc32(feature.tobytes())
        crc = zlib.crc32(threshold.tobytes(), crc)
        object.__setattr__(self, "fingerprint", crc)
        # Flat (tree-major) views for the engine's walk, derived once and shared like the rest:
        # the split column as an index, and each node's left child (right is one more).
        n_nodes = shape[1]
        nodes = np.arange(self.n_trees * n_nodes, dtype=np.intp)
        base = nodes - nodes % n_nodes
        left = base + 2 * (nodes - base) + 1
        for name, array in (
            ("flat_feature", feature.reshape(-1).astype(np.intp)),
            ("flat_threshold", threshold.reshape(-1)),
            ("flat_left", left),
        ):
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild through __init__ so that the arrays are validated and read-only again.
        return (
            type(self),
            (self.feature, self.threshold, self.n_trees, self.height, self.n_features),
        )

    @property
    def n_nodes(self) -> int:
        """Nodes per tree: ``2**(height + 1) - 1``."""
        return _n_nodes(self.height)

    @classmethod
    def from_river(cls, n_features: int, n_trees: int, height: int, seed: int) -> TreeStructure:
        """The trees river's ``HalfSpaceTrees(n_trees, height, seed=seed)`` builds.

        river builds its trees at the first ``learn_one`` from the sorted feature names, with
        limits ``(0, 1)`` per feature, one tree after the other from ``random.Random(seed)``.
        Features are named by their column index here, so river's sorted order is column order:
        column ``j`` of the arrays is the ``j``-th of the sorted feature names.

        Args:
            n_features: Number of features (columns).
            n_trees: Number of trees.
            height: Height of each tree.
            seed: river's ``seed``.

        Returns:
            The structure, with the splits river would draw.

        Raises:
            ValueError: If a count is out of range.
        """
        if n_features < 1 or n_trees < 1 or height < 0:
            raise ValueError("need n_features >= 1, n_trees >= 1 and height >= 0")
        n_nodes = _n_nodes(height)
        n_internal = _n_nodes(height - 1) if height > 0 else 0
        feature = np.full((n_trees, n_nodes), -1, dtype=np.int32)
        threshold = np.full((n_trees, n_nodes), np.nan, dtype=np.float64)
        rng = random.Random(seed)
        for t in range(n_trees):
            root = _make_padded_tree(
                limits={j: (0.0, 1.0) for j in range(n_features)},
                height=height,
                padding=_PADDING,
                rng=rng,
                r_mass=0,
                l_mass=0,
            )
            stack: list[tuple[Any, int]] = [(root, 0)]
            while stack:
                node, k = stack.pop()
                if k >= n_internal:
                    continue
                if not isinstance(node, PaddedBranch):  # pragma: no cover - river invariant
                    raise AssertionError("river's padded tree is not a full binary tree")
                feature[t, k] = node.feature
                threshold[t, k] = node.threshold
                left, right = node.children
                stack.append((left, 2 * k + 1))
                stack.append((right, 2 * k + 2))
        return cls(feature, threshold, n_trees, height, n_features)


@functools.lru_cache(maxsize=64)
def shared_structure(n_features: int, n_trees: int, height: int, seed: int) -> TreeStructure:
    """``TreeStructure.from_river``, built once per distinct arguments and then shared.

    Models built with the same arguments hold the same (read-only) structure object and only
    their own mass arrays.

    Args:
        n_features: Number of features (columns).
        n_trees: Number of trees.
        height: Height of each tree.
        seed: river's ``seed``.

    Returns:
        The shared structure.
    """
    return TreeStructure.from_river(n_features, n_trees, height, seed)


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
        if n_trees * window_size * _n_nodes(height) >= _EXACT_SUM_LIMIT:
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
        self.l_mass: Int64Array = np.zeros((n_trees, _n_nodes(height)), dtype=np.int64)
        self.r_mass: Int64Array = np.zeros((n_trees, _n_nodes(height)), dtype=np.int64)
        self.counter = 0
        self.first_window = True
        self.feature_names: tuple[str, ...] | None = None
        self._derive()

    def _derive(self) -> None:
        """Constants derived from the parameters (not part of the state)."""
        levels = self.height + 1
        self._weights: Int64Array = np.left_shift(1, np.arange(levels, dtype=np.int64))
        offsets = np.arange(self.n_trees, dtype=np.intp) * _n_nodes(self.height)
        self._tree_offsets: IntpArray = offsets
        # Masses are integers: m >= limit exactly when m >= ceil(limit), an integer comparison
        # (comparing int64 masses with a float converts every one of them).
        self._size_limit = math.ceil(_SIZE_LIMIT_FRACTION * self.window_size)
        self._max_score = float(self.n_trees * self.window_size * _n_nodes(self.height))
        self._chunk_rows = max(1, _MAX_PATH_ELEMENTS // (levels * self.n_trees))

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
            paths = self._paths(rows[chunk : chunk + self._chunk_rows])
            start = 0
            n = paths.shape[2]
            while start < n:
                stop = min(n, start + self.window_size - self.counter)
                segment = paths[:, :, start:stop]
                if not self.first_window:
                    scores[chunk + start : chunk + stop] = self._score_paths(segment)
                self._learn_paths(segment)
                self._advance(stop - start)
                start = stop
        return scores

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

    def learn_batch(self, X: npt.ArrayLike) -> None:
        """Learn each row in order, as river's ``learn_one``.

        Args:
            X: Rows of features in ``[0, 1]``, shape ``(n, n_features)``.

        Raises:
            ValueError: If ``X`` has the wrong shape or a NaN.
        """
        rows = self._rows(X, build=True)
        for chunk in range(0, len(rows), self._chunk_rows):
            paths = self._paths(rows[chunk : chunk + self._chunk_rows])
            start = 0
            n = paths.shape[2]
            while start < n:
                stop = min(n, start + self.window_size - self.counter)
                self._learn_paths(paths[:, :, start:stop])
                self._advance(stop - start)
                start = stop

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
        structure = self.structure
        return {
            "n_trees": self.n_trees,
            "height": self.height,
            "window_size": self.window_size,
            "seed": self.seed,
            "l_mass": self.l_mass,
            "r_mass": self.r_mass,
            "counter": self.counter,
            "first_window": self.first_window,
            "feature_names": self.feature_names,
            "shared": self._shared,
            # A shared structure is rebuilt from the seed on load and checked against this.
            "n_features": None if structure is None else structure.n_features,
            "fingerprint": None if structure is None else structure.fingerprint,
            "structure": structure if not self._shared else None,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.n_trees = int(state["n_trees"])
        self.height = int(state["height"])
        self.window_size = int(state["window_size"])
        self.seed = int(state["seed"])
        shape = (self.n_trees, _n_nodes(self.height))
        self.l_mass = np.array(state["l_mass"], dtype=np.int64, order="C")
        self.r_mass = np.array(state["r_mass"], dtype=np.int64, order="C")
        if self.l_mass.shape != shape or self.r_mass.shape != shape:
            raise ValueError(f"mass arrays must have shape {shape}")
        self.counter = int(state["counter"])
        self.first_window = bool(state["first_window"])
        names = state["feature_names"]
        self.feature_names = None if names is None else tuple(names)
        self._shared = bool(state["shared"])
        self.structure = state["structure"]
        if self._shared and state["n_features"] is not None:
            self.structure = shared_structure(
                int(state["n_features"]), self.n_trees, self.height, self.seed
            )
            if self.structure.fingerprint != state["fingerprint"]:
                raise ValueError(
                    "the trees rebuilt from the seed differ from the snapshot's "
                    "(did river's tree construction change?)"
                )
        self._derive()

    # ---------------------------------------------------------------------- internals

    def _dict_row(self, x: Mapping[str, float], names: tuple[str, ...]) -> Float64Array:
        try:
            values = [x[name] for name in names]
        except KeyError as exc:
            raise ValueError(f"missing feature {exc.args[0]!r}") from None
        return np.array([values], dtype=np.float64)

    def _rows(self, X: npt.ArrayLike, *, build: bool) -> Float64Array:
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
        if np.isnan(rows).any():
            raise ValueError("X has a NaN: missing features are not supported")
        return rows

    def _paths(self, rows: Float64Array) -> IntpArray:
        """Flat node index (``tree * n_nodes + node``) per level, tree and row.

        Returns:
            Shape ``(height + 1, n_trees, n_rows)``.
        """
        structure = self.structure
        assert structure is not None
        n, d = rows.shape
        feature = structure.flat_feature
        threshold = structure.flat_threshold
        left = structure.flat_left
        values = rows.reshape(-1)
        paths = np.empty((self.height + 1, self.n_trees, n), dtype=np.intp)
        node = paths[0]
        node[...] = self._tree_offsets[:, None]  # the roots
        row_base = np.arange(0, n * d, d, dtype=np.intp) if n > 1 else None
        for level in range(1, self.height + 1):
            column = feature.take(node)
            if row_base is not None:
                column += row_base
            right = values.take(column) >= threshold.take(node)
            node = np.add(left.take(node), right, out=paths[level])
        return paths

    def _score_paths(self, paths: IntpArray) -> Float64Array:
        mass = self.r_mass.reshape(-1).take(paths)  # (levels, trees, rows)
        if self.height > 0:
            # A level counts if every level above it had r_mass >= size_limit.
            going = mass[:-1] >= self._size_limit
            for level in range(1, self.height):
                # (logical_and.accumulate over axis 0 is several times slower than this loop)
                np.logical_and(going[level - 1], going[level], out=going[level])
            mass[1:] *= going
        total = self._weights @ mass.sum(axis=1)
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
            self.first_window = False
            self.counter = 0
