"""Half-Space Trees' shared tree structures, and walking rows through them for many models.

A :class:`TreeStructure` holds the split features and thresholds of river's padded trees in
heap layout; every model with the same number of features, trees, height and seed shares one
(:func:`shared_structure`). The path of a row through the trees depends only on the row and the
structure, never on a model's masses, so the paths of rows of *different* models are computed
together: :func:`walk` costs about the same for one row as for a hundred (a loop over levels),
which is what a batch of many services with a few events each needs.

Models ask for paths through :data:`Steps` generators: a generator yields a
:class:`PathRequest` and is sent the paths back. :func:`run_steps` serves one generator alone;
:func:`run_together` serves many in lockstep, walking the rows of all requests on the same
structure in one :func:`walk`. Each model's own work stays in its order, so the results are
the same either way.
"""

from __future__ import annotations

import functools
import random
import zlib
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt
from river.tree.padded import PaddedBranch, make_padded_tree

__all__ = [
    "MAX_PATH_ELEMENTS",
    "PathRequest",
    "Steps",
    "TreeStructure",
    "node_count",
    "path_masses",
    "path_totals",
    "run_steps",
    "run_together",
    "shared_structure",
    "walk",
]

Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
IntpArray = npt.NDArray[np.intp]
Float64Array = npt.NDArray[np.float64]
T = TypeVar("T")

_PADDING = 0.15  # river's HalfSpaceTrees: split points avoid the outer 15% of each range
MAX_PATH_ELEMENTS = 1 << 22
"""Rows x levels x trees walked at once: bounds the memory of the paths."""
_ACCUMULATE_ROWS = 16  # up to here, one logical_and.accumulate beats a call per level

# river is untyped: its tree builder is the one boundary to it.
_make_padded_tree: Callable[..., Any] = make_padded_tree


def node_count(height: int) -> int:
    """Nodes of a full binary tree of ``height``: ``2**(height + 1) - 1``."""
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
        flat_root: Flat index of each tree's root.
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
    flat_root: IntpArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        shape = (self.n_trees, node_count(self.height))
        feature = np.array(self.feature, dtype=np.int32, order="C")
        threshold = np.array(self.threshold, dtype=np.float64, order="C")
        if feature.shape != shape or threshold.shape != shape:
            raise ValueError(
                f"feature and threshold must have shape {shape}, "
                f"got {feature.shape} and {threshold.shape}"
            )
        n_internal = node_count(self.height - 1) if self.height > 0 else 0
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
            ("flat_root", np.arange(self.n_trees, dtype=np.intp) * n_nodes),
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
        return node_count(self.height)

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
        n_nodes = node_count(height)
        n_internal = node_count(height - 1) if height > 0 else 0
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

    Models built with the same arguments (those of ``from_river``) hold the same (read-only)
    structure object and only their own mass arrays.
    """
    return TreeStructure.from_river(n_features, n_trees, height, seed)


def walk(structure: TreeStructure, rows: Float64Array) -> IntpArray:
    """Flat node index (``tree * n_nodes + node``) per level, tree and row.

    Args:
        structure: The trees.
        rows: C-contiguous rows of ``structure.n_features`` values, without NaN.

    Returns:
        Shape ``(height + 1, n_trees, n_rows)``.

    Examples:
        >>> trees = shared_structure(n_features=2, n_trees=3, height=2, seed=0)
        >>> paths = walk(trees, np.array([[0.1, 0.9], [0.8, 0.2]]))
        >>> paths.shape, paths[0, :, 0].tolist()
        ((3, 3, 2), [0, 7, 14])
    """
    n, d = rows.shape
    feature = structure.flat_feature
    threshold = structure.flat_threshold
    left = structure.flat_left
    values = rows.reshape(-1)
    paths = np.empty((structure.height + 1, structure.n_trees, n), dtype=np.intp)
    node = paths[0]
    node[...] = structure.flat_root[:, None]
    row_base = np.arange(0, n * d, d, dtype=np.intp) if n > 1 else None
    for level in range(1, structure.height + 1):
        column = feature.take(node)
        if row_base is not None:
            column += row_base
        right = values.take(column) >= threshold.take(node)
        node = np.add(left.take(node), right, out=paths[level])
    return paths


def path_masses(masses: Int64Array, paths: IntpArray, limit: int) -> Int64Array:
    """Half-Space Trees' score mass of each row (``paths``: per level, tree and row, as
    :func:`walk` gives them) over the trees of ``masses``: the sum of ``mass * 2**depth``
    over its paths' nodes, a node counted only while every node above it holds at least
    ``limit`` (river's ``score_one``). Integers: the sum is exact in any order.

    Examples:
        >>> masses = np.array([[8, 5, 3, 4, 1, 2, 1]])  # one tree of height 2
        >>> path_masses(masses, np.array([[[0, 0]], [[1, 2]], [[3, 5]]]), limit=4).tolist()
        [34, 14]
    """
    mass = masses.reshape(-1).take(paths)  # (levels, trees, rows)
    if mass.shape[0] > 1:
        # A level counts if every level above it had mass >= limit.
        going = mass[:-1] >= limit
        if paths.shape[2] <= _ACCUMULATE_ROWS:
            np.logical_and.accumulate(going, axis=0, out=going)
        else:  # accumulate over the outer axis is slow on many rows: level by level
            for level in range(1, going.shape[0]):
                np.logical_and(going[level - 1], going[level], out=going[level])
        mass[1:] *= going
    weights = np.left_shift(1, np.arange(mass.shape[0], dtype=np.int64))
    out: Int64Array = weights @ mass.sum(axis=1)
    return out


def path_totals(masses: Int64Array, height: int, limit: int) -> Int64Array:
    """:func:`path_masses` of every leaf, per tree (flat: tree-major, heap layout as
    ``masses``; 0 at inner nodes): a row's score mass in a tree is then its leaf's, one
    lookup instead of one per level (worth it for the many small segments of a reference
    profile; it costs about as much as scoring 150 rows level by level).

    Examples:
        >>> masses = np.array([[8, 5, 3, 4, 1, 2, 1]])  # one tree of height 2
        >>> path_totals(masses, 2, limit=4).tolist()  # its leaves: 8 + 5*2 + 4*4, ...
        [0, 0, 0, 34, 22, 14, 14]
    """
    trees = masses.shape[0]
    by_node = np.ascontiguousarray(masses.T)  # nodes by trees: a level is a block of rows
    totals = by_node[:1]  # the root counts, at weight 1
    counted = np.ones((1, trees), dtype=bool)
    for level in range(1, height + 1):
        width = 1 << (level - 1)  # nodes one level up; node k's children are 2k + 1, 2k + 2
        above = (counted & (by_node[width - 1 : 2 * width - 1] >= limit))[:, None, :]
        here = by_node[2 * width - 1 : 4 * width - 1].reshape(width, 2, trees)
        totals = (totals[:, None, :] + (here << level) * above).reshape(2 * width, trees)
        counted = np.broadcast_to(above, (width, 2, trees)).reshape(2 * width, trees)
    out = np.zeros_like(masses)
    out[:, (1 << height) - 1 :] = totals.T
    flat: Int64Array = out.reshape(-1)
    return flat


@dataclass(frozen=True, slots=True)
class PathRequest:
    """Rows whose paths through ``structure`` a model needs before it can go on.

    Attributes:
        structure: The trees to walk.
        rows: C-contiguous rows without NaN, at most ``MAX_PATH_ELEMENTS`` path elements.
    """

    structure: TreeStructure
    rows: Float64Array

    @property
    def elements(self) -> int:
        """Path elements the rows take: rows x levels x trees."""
        s = self.structure
        return len(self.rows) * (s.height + 1) * s.n_trees


Steps: TypeAlias = Generator[PathRequest, IntpArray, T]
"""A computation that yields path requests, is sent their paths, and returns a ``T``."""


def run_steps(steps: Steps[T]) -> T:
    """Run one computation, walking its requests as they come.

    Examples:
        >>> def count_levels(rows: Float64Array) -> Steps[int]:
        ...     paths = yield PathRequest(shared_structure(1, 2, 3, seed=0), rows)
        ...     return paths.shape[0]
        >>> run_steps(count_levels(np.array([[0.5]])))
        4
    """
    try:
        request = next(steps)
        while True:
            request = steps.send(walk(request.structure, request.rows))
    except StopIteration as done:
        result: T = done.value
        return result


def run_together(computations: Sequence[Steps[T]]) -> list[T]:
    """Run many computations in lockstep; each round walks their requests per structure at once.

    The rows of all the requests of a round on one structure are walked together (in parts of
    at most ``MAX_PATH_ELEMENTS``), and each computation is sent the paths of its own rows.

    Returns:
        The result of each computation, in order.

    Examples:
        >>> def first_leaf(rows: Float64Array) -> Steps[list[int]]:
        ...     paths = yield PathRequest(shared_structure(2, 3, 2, seed=0), rows)
        ...     return paths[-1, 0].tolist()
        >>> rows = np.array([[0.1, 0.9], [0.8, 0.2]])
        >>> together = run_together([first_leaf(rows[:1]), first_leaf(rows[1:])])
        >>> together == [run_steps(first_leaf(rows[:1])), run_steps(first_leaf(rows[1:]))]
        True
    """
    results: list[Any] = [None] * len(computations)
    waiting: list[tuple[int, PathRequest]] = []

    def advance(i: int, paths: IntpArray | None) -> None:
        try:
            request = computations[i].send(paths)  # type: ignore[arg-type]  # None starts it
        except StopIteration as done:
            results[i] = done.value
        else:
            waiting.append((i, request))

    for i in range(len(computations)):
        advance(i, None)
    while waiting:
        by_structure: dict[int, list[tuple[int, PathRequest]]] = {}
        for i, request in waiting:
            by_structure.setdefault(id(request.structure), []).append((i, request))
        waiting = []
        for group in by_structure.values():
            for part in _parts(group):
                structure = part[0][1].structure
                rows = [request.rows for _, request in part]
                paths = walk(structure, rows[0] if len(rows) == 1 else np.concatenate(rows))
                offset = 0
                for i, request in part:
                    n = len(request.rows)
                    advance(i, paths[:, :, offset : offset + n])
                    offset += n
    return results


def _parts(
    group: list[tuple[int, PathRequest]],
) -> list[list[tuple[int, PathRequest]]]:
    """The requests in consecutive parts of at most ``MAX_PATH_ELEMENTS`` path elements."""
    parts: list[list[tuple[int, PathRequest]]] = [[]]
    elements = 0
    for item in group:
        if parts[-1] and elements + item[1].elements > MAX_PATH_ELEMENTS:
            parts.append([])
            elements = 0
        parts[-1].append(item)
        elements += item[1].elements
    return parts
