"""A risk vector as a row of values under a tuple of names (a read-only mapping)."""

from __future__ import annotations

import functools
from collections.abc import ItemsView, Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["FeatureRow", "column_positions"]


@functools.lru_cache(maxsize=1024)
def column_positions(names: tuple[str, ...]) -> dict[str, int]:
    """Each name's column in rows of this feature set (built once per set)."""
    return {name: i for i, name in enumerate(names)}


class FeatureRow(Mapping[str, float]):
    """A risk vector as a row of values under a tuple of names: a read-only mapping.

    Vectors are built, held and learned as rows (the model reads many at once as a matrix,
    without a dict per vector); a dict is made only when one is asked for (:meth:`to_dict`,
    or mapping access such as ``items()``). Names are in the vector's order; the row may be
    float64 or float32 (what a buffer stored), read as Python floats.

    Examples:
        >>> row = FeatureRow(("cpu", "mem"), np.array([1.5, 2.0]))
        >>> row["mem"], list(row), len(row), row == {"cpu": 1.5, "mem": 2.0}
        (2.0, ['cpu', 'mem'], 2, True)
        >>> row.to_dict()
        {'cpu': 1.5, 'mem': 2.0}
    """

    __slots__ = ("names", "row")

    def __init__(self, names: tuple[str, ...], row: npt.NDArray[np.floating[Any]]) -> None:
        if len(names) != len(row):
            raise ValueError("a FeatureRow needs one value per name")
        self.names = names
        self.row = row

    def __getitem__(self, name: str) -> float:
        return float(self.row[column_positions(self.names)[name]])

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"FeatureRow({self.to_dict()!r})"

    def items(self) -> ItemsView[str, float]:
        return self.to_dict().items()

    def to_dict(self) -> dict[str, float]:
        """The features as a fresh dict, in the row's order."""
        return dict(zip(self.names, self.row.tolist(), strict=True))
