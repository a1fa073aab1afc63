"""The incident-risk model's linear form: its weights as arrays, read over many vectors at once."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from models.incident.feature_row import FeatureRow, column_positions

__all__ = ["LinearForm"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LinearForm:
    """The model as arrays over the features it weighs: logit = b + w · clip(z)."""

    names: tuple[str, ...]
    pick: Callable[[Mapping[str, float]], Sequence[float]]
    weights: FloatArray
    means: FloatArray
    inv_stds: FloatArray
    columns: dict[tuple[str, ...], tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]] = field(
        default_factory=dict
    )
    """Per feature set of :class:`FeatureRow` vectors: the model's columns it has, and where
    they are in its rows."""

    @classmethod
    def of(
        cls, names: tuple[str, ...], weights: FloatArray, means: FloatArray, inv_stds: FloatArray
    ) -> LinearForm:
        """The form over ``names`` (its picker built for them)."""
        return cls(names, _picker(names), weights, means, inv_stds)

    def matrix(self, vectors: Sequence[Mapping[str, float]]) -> FloatArray:
        """The vectors' values of :attr:`names` as an (n, k) float64 matrix (NaN: missing)."""
        n, k = len(vectors), len(self.names)
        by_names: dict[tuple[str, ...], tuple[list[int], list[npt.NDArray[Any]]]] = {}
        for i, vector in enumerate(vectors):
            if type(vector) is not FeatureRow:
                break
            index, rows = by_names.setdefault(vector.names, ([], []))
            index.append(i)
            rows.append(vector.row)
        else:  # rows: gathered by feature set, no dict per vector
            if len(by_names) == 1:
                ((names, (_, rows)),) = by_names.items()
                return self.columns_of(names, np.array(rows), n)
            X = np.empty((n, k))
            for names, (index, rows) in by_names.items():
                X[index] = self.columns_of(names, np.array(rows), len(index))
            return X
        try:  # the usual case: every vector has every feature the model knows
            picked = [self.pick(vector) for vector in vectors]
        except KeyError:
            picked = [[vector.get(name, math.nan) for name in self.names] for vector in vectors]
        return np.array(picked, dtype=np.float64).reshape(n, k)

    def columns_of(self, names: tuple[str, ...], rows: npt.NDArray[Any], n: int) -> FloatArray:
        """The model's columns of ``rows`` (a feature set's values), as float64."""
        cached = self.columns.get(names)
        if cached is None:
            at = column_positions(names)
            have = [j for j, name in enumerate(self.names) if name in at]
            cached = self.columns[names] = (
                np.array(have, dtype=np.intp),
                np.array([at[self.names[j]] for j in have], dtype=np.intp),
            )
        have_index, source = cached
        if have_index.size == len(self.names):
            # C order, as the dict path builds it: the logits' matrix product must not depend
            # on how the vectors came
            return np.ascontiguousarray(rows.reshape(n, len(names))[:, source], dtype=np.float64)
        X = np.full((n, len(self.names)), math.nan)
        X[:, have_index] = rows.reshape(n, len(names))[:, source]
        return X


def _picker(names: tuple[str, ...]) -> Callable[[Mapping[str, float]], Sequence[float]]:
    """Values of ``names`` from a mapping, as a sequence (in C); KeyError if one is missing."""
    if not names:
        return lambda vector: ()
    if len(names) == 1:
        single = operator.itemgetter(names[0])
        return lambda vector: (single(vector),)
    return operator.itemgetter(*names)
