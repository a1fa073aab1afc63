"""The HST engine alone: river's per-event Half-Space Trees against the numpy engine, one run.

River's ``score_one`` then ``learn_one`` per event (over dicts, as river's users call it) is
timed against the numpy engine's ``score_learn_batch`` over micro-batches of several sizes. The
runs of both engines are interleaved (river, then numpy at every batch size, ``repeats`` times)
so that a busy neighbour on a shared machine slows both alike, and each rate is the median of
its runs. Both models learn one full mass window before the clock starts: tree construction
and the unscored first window are not part of the steady state being measured.

The *crossover* is the smallest batch size at which numpy is at least as fast as river per
event: below it, numpy's per-call overhead outweighs its vectorised work.

Examples:
    >>> run = measure_engines(n_trees=3, height=3, batch_sizes=(1, 50), events=300,
    ...                       river_events=300, repeats=1, window_size=50)
    >>> sorted(run.numpy_per_s), run.river_per_s > 0
    ([1, 50], True)
    >>> run.speedup(50) == run.numpy_per_s[50] / run.river_per_s
    True
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import numpy as np
import numpy.typing as npt
from river import anomaly

from models.anomaly.hst import make_hst

__all__ = [
    "CROSSOVER_BATCH_SIZES",
    "DEFAULT_SHAPES",
    "EngineRun",
    "engine_memory",
    "measure_engines",
    "numpy_rate",
    "river_rate",
    "uniform_events",
]

FloatArray = npt.NDArray[np.float64]
Shape = tuple[int, int]
"""``(n_trees, height)`` of a Half-Space Trees model."""

DEFAULT_SHAPES: tuple[Shape, ...] = ((10, 8), (25, 15))
CROSSOVER_BATCH_SIZES: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 1000)


def uniform_events(
    rows: int, n_features: int = 5, seed: int = 0
) -> tuple[FloatArray, list[dict[str, float]]]:
    """``rows`` events of features uniform in [0, 1], as an array and as river's dicts.

    Feature names sort in column order (``f0``..``f9``), so both engines see the same columns.
    """
    if n_features > 10:
        raise ValueError("at most 10 features: names f0..f9 sort in column order")
    X = np.random.default_rng(seed).random((rows, n_features))
    names = [f"f{j}" for j in range(n_features)]
    return X, [dict(zip(names, row, strict=True)) for row in X.tolist()]


def river_rate(
    dicts: Sequence[dict[str, float]],
    *,
    n_trees: int,
    height: int,
    window_size: int = 250,
    seed: int = 0,
) -> float:
    """Events/s of river's ``score_one`` + ``learn_one`` after a first, untimed window."""
    model: Any = anomaly.HalfSpaceTrees(
        n_trees=n_trees, height=height, window_size=window_size, seed=seed
    )
    for x in dicts[:window_size]:
        model.learn_one(x)
    stream = dicts[window_size:]
    if not stream:
        raise ValueError("need more events than one window")
    start = time.perf_counter()
    for x in stream:
        model.score_one(x)
        model.learn_one(x)
    return len(stream) / (time.perf_counter() - start)


def numpy_rate(
    X: FloatArray,
    *,
    batch_size: int,
    n_trees: int,
    height: int,
    window_size: int = 250,
    seed: int = 0,
) -> float:
    """Events/s of the numpy engine over batches of ``batch_size``, after an untimed window."""
    model = make_hst("numpy", n_trees=n_trees, height=height, window_size=window_size, seed=seed)
    model.score_learn_batch(X[:window_size])
    stream = X[window_size:]
    if not len(stream):
        raise ValueError("need more events than one window")
    start = time.perf_counter()
    for i in range(0, len(stream), batch_size):
        model.score_learn_batch(stream[i : i + batch_size])
    return len(stream) / (time.perf_counter() - start)


@dataclass(frozen=True, slots=True)
class EngineRun:
    """Both engines timed on the same events in one run, for one tree shape.

    Attributes:
        n_trees: Number of trees.
        height: Tree height.
        river_events: Events per timed river run (after the untimed window).
        numpy_events: Events per timed numpy run (after the untimed window).
        river_runs: Events/s of each river run.
        numpy_runs: Events/s of each numpy run, by batch size.
    """

    n_trees: int
    height: int
    river_events: int
    numpy_events: int
    river_runs: tuple[float, ...]
    numpy_runs: dict[int, tuple[float, ...]] = field(default_factory=dict)

    @property
    def river_per_s(self) -> float:
        """Median events/s of river."""
        return median(self.river_runs)

    @property
    def numpy_per_s(self) -> dict[int, float]:
        """Median events/s of numpy, by batch size (ascending)."""
        return {b: median(runs) for b, runs in sorted(self.numpy_runs.items())}

    def speedup(self, batch_size: int) -> float:
        """numpy's median events/s at ``batch_size`` over river's."""
        return self.numpy_per_s[batch_size] / self.river_per_s

    @property
    def crossover(self) -> int | None:
        """The smallest batch size at which numpy is at least as fast as river (None: never)."""
        river = self.river_per_s
        return next((b for b, rate in self.numpy_per_s.items() if rate >= river), None)


def measure_engines(
    *,
    n_trees: int,
    height: int,
    batch_sizes: Sequence[int],
    events: int,
    river_events: int,
    repeats: int = 3,
    window_size: int = 250,
    n_features: int = 5,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> EngineRun:
    """Time river and numpy (at each batch size) on the same events, runs interleaved.

    Args:
        n_trees: Number of trees.
        height: Tree height.
        batch_sizes: numpy batch sizes to time.
        events: Timed events per numpy run.
        river_events: Timed events per river run (river at 25 trees of height 15 does ~1,000
            events/s: a few thousand are enough).
        repeats: Runs of each measurement; medians are reported.
        window_size: HST mass window (one window is learnt before timing).
        n_features: Features per event.
        seed: Seed of the trees and of the data.
        progress: Called with a line of text before each round of runs.

    Returns:
        The runs of both engines.
    """
    say = progress or (lambda _line: None)
    X, dicts = uniform_events(window_size + max(events, river_events), n_features, seed)
    shape: dict[str, int] = {
        "n_trees": n_trees,
        "height": height,
        "window_size": window_size,
        "seed": seed,
    }
    river_runs: list[float] = []
    numpy_runs: dict[int, list[float]] = {b: [] for b in batch_sizes}
    for repeat in range(repeats):
        say(f"engines {n_trees}x{height}: round {repeat + 1}/{repeats}")
        river_runs.append(river_rate(dicts[: window_size + river_events], **shape))
        for b in batch_sizes:
            numpy_runs[b].append(numpy_rate(X[: window_size + events], batch_size=b, **shape))
    return EngineRun(
        n_trees=n_trees,
        height=height,
        river_events=river_events,
        numpy_events=events,
        river_runs=tuple(river_runs),
        numpy_runs={b: tuple(runs) for b, runs in numpy_runs.items()},
    )


def _traced_bytes(build: Callable[[], Any], count: int) -> float:
    """Bytes still allocated per object after building ``count`` objects (kept alive)."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        kept = [build() for _ in range(count)]
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    return (after - before) / count


def engine_memory(
    *,
    n_trees: int,
    height: int,
    river_models: int,
    numpy_models: int = 20,
    window_size: int = 250,
    n_features: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Bytes one model holds after its first learn, by engine (traced by ``tracemalloc``).

    The numpy figure excludes the tree structure, which is built once and shared by every model
    of the same shape (it is allocated by the first model, before tracing starts).

    Args:
        n_trees: Number of trees.
        height: Tree height.
        river_models: River models to build; one river model at (25, 15) is ~370 MB.
        numpy_models: numpy models to build.
        window_size: HST mass window.
        n_features: Features per event.
        seed: Seed of the trees.

    Returns:
        ``river_bytes_per_model``, ``numpy_bytes_per_model`` (traced) and
        ``numpy_mass_bytes_per_model`` (the engine's own ``nbytes``).
    """
    X, dicts = uniform_events(1, n_features, seed)
    shape = {"n_trees": n_trees, "height": height, "window_size": window_size, "seed": seed}

    def build_river() -> Any:
        model: Any = anomaly.HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
        model.learn_one(dicts[0])
        return model

    def build_numpy() -> Any:
        model = make_hst("numpy", **shape)
        model.score_learn_batch(X)
        return model

    mass_bytes = build_numpy().nbytes  # also builds the shared trees before tracing
    return {
        "river_bytes_per_model": _traced_bytes(build_river, river_models),
        "numpy_bytes_per_model": _traced_bytes(build_numpy, numpy_models),
        "numpy_mass_bytes_per_model": float(mass_bytes),
    }
