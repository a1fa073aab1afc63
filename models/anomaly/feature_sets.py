"""A service's feature set over time: where a batch's next run over one feature set ends,
and the candidate model that learns a grown set next to the current one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from models.anomaly.config import AnomalyConfig
from models.anomaly.core import ScoringCore
from models.anomaly.rows import exact_matrix, first_with_unknown

__all__ = ["RunPlan", "grown_candidate", "plan_run"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Rows ``start:end`` go through over the same feature set."""

    end: int
    new: tuple[str, ...]
    """Names the run's first row brings that no model knows (it starts or widens the
    candidate)."""
    new_to_core: tuple[str, ...]
    """Names of the first row that the current core does not score (reported)."""
    matrix: FloatArray | None = field(default=None, repr=False)
    """The run's rows over its features, when they were built on the way (else None)."""


def plan_run(
    rows: Sequence[Mapping[str, float]],
    start: int,
    core: ScoringCore,
    candidate: ScoringCore | None,
    *,
    warmup: int,
    learn: bool,
) -> RunPlan:
    """The run from ``start``: up to the next row with an unknown name (a row that brings
    new names runs alone, the rows before it first), and, while a candidate learns, up to
    its promotion (rows until then use the current core).

    Examples:
        >>> core = ScoringCore(("a",), 1, AnomalyConfig())
        >>> plan_run([{"a": 1}, {"a": 1}, {"a": 1, "b": 2}], 0, core, None, warmup=500, learn=True)
        RunPlan(end=2, new=(), new_to_core=())
        >>> plan_run([{"a": 1, "b": 2}], 0, core, None, warmup=500, learn=True).new
        ('b',)
    """
    if candidate is None or learn:  # the run's features are every feature known
        names = core.feature_names if candidate is None else candidate.feature_names
        X = exact_matrix(rows[start:], names)
        if X is not None:
            end = len(rows)
            if candidate is not None:
                end = min(end, start + warmup - candidate.learned)
            return RunPlan(end, (), (), X[: end - start])
    known = set(core.feature_names)
    if candidate is not None:
        known |= set(candidate.feature_names)
    end = first_with_unknown(rows, start, known)
    if end == start:  # this row brings new names (the rows before it were processed first)
        new = tuple(sorted(set(rows[start]) - known))
        new_to_core = tuple(sorted(set(rows[start]) - set(core.feature_names)))
        return RunPlan(start + 1, new, new_to_core)
    if learn and candidate is not None:
        end = min(end, start + warmup - candidate.learned)
    return RunPlan(end, (), ())


def grown_candidate(
    core: ScoringCore, candidate: ScoringCore | None, new: tuple[str, ...], config: AnomalyConfig
) -> ScoringCore | None:
    """A candidate over the features of ``candidate`` (or ``core``) and ``new``, one
    generation past ``core``: None when ``candidate`` already covers ``new``.

    Examples:
        >>> core = ScoringCore(("a",), 1, AnomalyConfig())
        >>> wider = grown_candidate(core, None, ("b",), AnomalyConfig())
        >>> wider.feature_names, wider.generation
        (('a', 'b'), 2)
        >>> grown_candidate(core, wider, ("b",), AnomalyConfig()) is None
        True
    """
    if candidate is not None and set(new) <= set(candidate.feature_names):
        return None
    base = candidate or core
    names = tuple(sorted({*base.feature_names, *new}))
    return ScoringCore(names, core.generation + 1, config)
